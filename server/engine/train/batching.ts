// Micro-batches for next-token training, kept on the host as typed arrays for the loop
// to upload. Legend: B = micro-batch size (rows), T = positions per row.
// Row b holds an example's tokens 0..n-2 as inputs and 1..n-1 as targets, padded on the
// right: with causal attention no real token ever attends to padding, so no attention
// mask is needed, and padded positions carry weight 0 in the loss.
import { Rng, type RngState } from '../rng';
import type { Example } from './types';

export interface Batch {
  /** [B, T]; B is smaller than microBatchSize only for the last batch of an epoch. */
  shape: [number, number];
  /** (B, T) token ids fed to the model. */
  inputs: Int32Array;
  /** (B, T) the next token at each position. */
  targets: Int32Array;
  /** (B, T) 1 where the target is trained, 0 on padding and masked prompt tokens. */
  weights: Float32Array;
  /** Real (non-padding) input tokens: what tokens/s counts. */
  tokens: number;
  /** Sum of weights: the loss is the weighted mean over these. */
  targetCount: number;
}

export interface BatchOptions {
  microBatchSize: number;
  /** Upper bound on T (examples longer than maxSeqLen + 1 tokens are cut). */
  maxSeqLen: number;
  /** Id written at padded positions; any id works, as their weight is 0. */
  padId: number;
  /** 'longest' (default): T is the longest row of the batch; 'max': always maxSeqLen. */
  padTo?: 'longest' | 'max';
}

export interface BatcherOptions extends BatchOptions {
  /** The run's seed; the batch order uses a stream of its own derived from it. */
  seed: number;
}

/** Where the batcher stands: the next batch is order(epoch)[index ...]. Plain JSON. */
export interface BatchPosition {
  epoch: number;
  /** Examples of this epoch already served. */
  index: number;
  /** The RNG state this epoch's order was drawn from. */
  rng: RngState;
}

// The batch order draws from its own stream, so it does not repeat the permutation the
// validation split drew from the same seed.
const BATCH_STREAM = 0x42415443;

/** Endless micro-batches, reshuffled every epoch; resumable exactly from position(). */
export class Batcher {
  private epoch = 0;
  private index = 0;
  private epochRng: RngState = [0, 0, 0, 0];
  private order: number[] = [];
  private rng: Rng;

  constructor(private readonly examples: Example[], private readonly opts: BatcherOptions) {
    if (examples.length === 0) throw new Error('Batcher: no examples');
    if (!(Number.isInteger(opts.microBatchSize) && opts.microBatchSize >= 1)) {
      throw new Error(`microBatchSize must be a positive integer, got ${opts.microBatchSize}`);
    }
    this.rng = new Rng((opts.seed ^ BATCH_STREAM) >>> 0);
    this.startEpoch(0);
  }

  /** Micro-batches per epoch, the last one possibly partial. */
  get batchesPerEpoch(): number {
    return Math.ceil(this.examples.length / this.opts.microBatchSize);
  }

  /** The position of the next batch, to save in a checkpoint. */
  position(): BatchPosition {
    return { epoch: this.epoch, index: this.index, rng: [...this.epochRng] as RngState };
  }

  /** Continues from a saved position: the next batch is the one that came next then. */
  setPosition(p: BatchPosition): void {
    if (!(Number.isInteger(p.epoch) && p.epoch >= 0 && Number.isInteger(p.index) &&
          p.index >= 0 && p.index < this.examples.length && p.rng?.length === 4)) {
      throw new Error(`invalid batch position ${JSON.stringify(p)} for ${this.examples.length} examples`);
    }
    this.rng = new Rng(p.rng);
    this.startEpoch(p.epoch);
    this.index = p.index;
  }

  next(): Batch & { epoch: number } {
    const epoch = this.epoch;
    const rows = this.order.slice(this.index, this.index + this.opts.microBatchSize);
    const batch = makeBatch(rows.map((i) => this.examples[i]), this.opts);
    this.index += rows.length;
    // Moving to the next epoch at once makes position().epoch the count of epochs done.
    if (this.index >= this.examples.length) this.startEpoch(this.epoch + 1);
    return { ...batch, epoch };
  }

  private startEpoch(epoch: number): void {
    this.epoch = epoch;
    this.index = 0;
    this.epochRng = this.rng.state();
    this.order = this.rng.shuffle([...this.examples.keys()]);
  }
}

/** The examples in file order, in micro-batches: one pass for evaluation. */
export function* sequentialBatches(examples: Example[], opts: BatchOptions): Generator<Batch> {
  for (let i = 0; i < examples.length; i += opts.microBatchSize) {
    yield makeBatch(examples.slice(i, i + opts.microBatchSize), opts);
  }
}

/** Pads `rows` into one [B, T] batch of inputs, shifted targets and loss weights. */
export function makeBatch(rows: Example[], opts: BatchOptions): Batch {
  const B = rows.length;
  const positions = rows.map((r) => Math.min(r.ids.length - 1, opts.maxSeqLen));
  const T = opts.padTo === 'max' ? opts.maxSeqLen : Math.max(1, ...positions);
  const inputs = new Int32Array(B * T).fill(opts.padId);
  const targets = new Int32Array(B * T).fill(opts.padId);
  const weights = new Float32Array(B * T);
  let tokens = 0;
  let targetCount = 0;
  rows.forEach((r, b) => {
    const n = positions[b];
    const row = b * T;
    inputs.set(r.ids.subarray(0, n), row);
    targets.set(r.ids.subarray(1, n + 1), row);
    for (let t = 0; t < n; t++) {
      weights[row + t] = r.mask[t + 1];
      targetCount += r.mask[t + 1];
    }
    tokens += n;
  });
  return { shape: [B, T], inputs, targets, weights, tokens, targetCount };
}

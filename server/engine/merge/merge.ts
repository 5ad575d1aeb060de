// Merging a LoRA adapter into its base model (Hu et al. 2021, section 4.1; PEFT's
// merge_and_unload): every adapted projection becomes
//   W' = W + scaling * B A,   scaling = alpha / r (rsLoRA: alpha / sqrt(r)),
// where W is the full-precision base weight (`into: original`) or, for an adapter trained
// on a 4-bit base, that weight quantized and dequantized exactly as training saw it
// (`into: dequantized`, the default then; QLoRA's merge pitfall, peft #2321). With
// `dequantized` every block projection goes through the 4-bit round trip, adapted or not:
// training saw the whole base in 4 bits. The result is a standalone Hugging Face folder.
//
// Streaming: tensors are read one at a time into one reusable float32 buffer (the largest
// tensor), changed in place, and appended to the output shards, so a merge holds one tensor,
// the adapter and a 2 MB narrowing buffer, never two copies of the model. Everything is
// written into a temporary folder beside the output and renamed into place at the end.
//
// Shapes: W (out, in), A (r, in), B (out, r), row-major.
import { mkdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { isNonEmptyDir, replaceDir } from '../formats/binaryFile';
import { writeModelSideFiles } from '../formats/hfWriter';
import type { SafetensorsDtype } from '../formats/safetensors';
import type { BaseReader } from './baseReader';
import { checkMerge, type LoraPair } from './plan';
import { RoundTripBuffers, roundTrip4bitInPlace } from '../quant/roundTrip';
import { SafetensorsStreamWriter } from './safetensorsStream';
import {
  MergeCancelledError, MergeRefusedError, type MergeDtype, type MergeEvent, type MergeOptions, type MergeResult, type MergeSummary,
} from './types';

const SAFETENSORS_DTYPE: Record<MergeDtype, SafetensorsDtype> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };
const BYTES: Record<MergeDtype, number> = { float32: 4, float16: 2, bfloat16: 2 };

/** w (out, in) += scaling * B A, the product summed in float64 per row and added once. */
export function addLoraDelta(w: Float32Array, pair: LoraPair, scaling: number): void {
  const [r, inp] = pair.A.shape;
  const out = pair.B.shape[0];
  const A = pair.A.data, B = pair.B.data;
  const row = new Float64Array(inp); // (in,) one row of B A
  for (let o = 0; o < out; o++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const b = B[o * r + k];
      if (b === 0) continue;
      const a = k * inp;
      for (let i = 0; i < inp; i++) row[i] += b * A[a + i];
    }
    const base = o * inp;
    for (let i = 0; i < inp; i++) w[base + i] += scaling * row[i];
  }
}

/** Checks everything, then merges; resolves once the output folder is in place. */
export async function mergeAdapter(opts: MergeOptions, onEvent: (e: MergeEvent) => void = () => {}): Promise<MergeResult> {
  const started = Date.now();
  const checked = await checkMerge(opts);
  const { summary, base, pairs, projections } = checked;
  const out = summary.out;
  const temp = join(dirname(out), `.${basename(out)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  let writer: SafetensorsStreamWriter | undefined;
  try {
    onEvent({ type: 'start', ...summary });
    for (const message of checked.notes) onEvent({ type: 'log', level: 'info', message });
    mkdirSync(temp, { recursive: true });
    writer = new SafetensorsStreamWriter(temp, base.tensors.map((t) => ({ name: t.name, shape: t.shape })),
      SAFETENSORS_DTYPE[summary.dtype], opts.maxShardBytes ?? 5e9);
    const scratch = new Float32Array(summary.largestTensorBytes / 4);
    const q = summary.quantization;
    const blockStats = new RoundTripBuffers();
    let bytesWritten = 0;
    for (let i = 0; i < base.tensors.length; i++) {
      // Yield between tensors so that a cancel (or a UI update) gets its turn.
      await new Promise((resolveTurn) => setImmediate(resolveTurn));
      if (opts.signal?.aborted) throw new MergeCancelledError();
      const t = base.tensors[i];
      const w = base.read(t.name, scratch);
      if (q && projections.has(t.name)) {
        roundTrip4bitInPlace(w, { quantType: q.quantization as 'nf4' | 'fp4', blockSize: q.blockSize, doubleQuant: q.doubleQuant }, blockStats);
      }
      const pair = pairs.get(t.name);
      if (pair) addLoraDelta(w, pair, summary.scaling);
      writer.write(t.name, w);
      const overflow = writer.overflows.get(t.name);
      if (overflow) {
        throw new Error(`${t.name}: ${overflow} merged values exceed the range of ${summary.dtype}: use --dtype bfloat16 or float32`);
      }
      bytesWritten += w.length * BYTES[summary.dtype];
      const layer = /^model\.layers\.(\d+)\./.exec(t.name);
      onEvent({
        type: 'progress', tensor: t.name, layer: layer ? Number(layer[1]) : null, layers: base.config.numLayers, merged: !!pair,
        done: i + 1, total: base.tensors.length, bytesWritten, totalBytes: writer.totalBytes,
      });
    }
    const files = writer.finish();
    writer = undefined;
    writeModelSideFiles(temp, base.config, base.tokenizer, summary.dtype);
    if (!opts.force && isNonEmptyDir(out)) {
      throw new MergeRefusedError(`output ${out} appeared while merging and is not empty: nothing replaced; choose another folder, or replace it (--force)`);
    }
    replaceDir(temp, out);
    const written = [...files.files, ...(files.index ? [files.index] : [])].map((f) => join(out, basename(f)));
    onEvent({ type: 'done', out, files: written, bytes: summary.totalBytes, mergedModules: summary.mergedModules, elapsedMs: Date.now() - started });
    return { out, files: written, summary };
  } catch (err) {
    writer?.abort();
    rmSync(temp, { recursive: true, force: true });
    throw err;
  } finally {
    base.close();
  }
}


// The GPU benchmark's model and runs, written to one folder: a Llama-shaped model of about
// 150M parameters with random weights (the demo's llama2.c writers, server/demo/tinyModel.ts,
// at a larger size, with the vocabulary padded to Llama's 32000), a text data set whose
// every example fills the sequence, and the .qlora files of the runs: NF4 base with double
// quantization, LoRA r 16 on all seven projections, dropout 0.
//   node bench.cjs make-model DIR [--layers 10] [--batch 8] [--seq 512] [--steps 200] [--tiny]
import { writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { checkpointBin, tokenizerBin, type TinyModelSpec } from '../../../server/demo/tinyModel';
import { shipLogs } from '../../../server/demo/corpus';
import { configText } from '../../../server/config/write';

export interface BenchSpec extends TinyModelSpec {
  vocabSize: number;
}

/** ~150M parameters: 118M in the block projections (what NF4 holds), 33M in the tied embedding. */
export const BENCH_MODEL: BenchSpec = {
  dim: 1024, hiddenDim: 2816, nLayers: 10, nHeads: 16, nKvHeads: 8, seqLen: 1024, merges: 400, seed: 1, vocabSize: 32000,
};

/** For a smoke run of the scripts on a machine without a GPU. */
export const SMOKE_MODEL: BenchSpec = {
  dim: 64, hiddenDim: 176, nLayers: 2, nHeads: 4, nKvHeads: 2, seqLen: 128, merges: 160, seed: 1, vocabSize: 1024,
};

export function parameterCount(s: BenchSpec): { projections: number; total: number } {
  const kv = (s.dim / s.nHeads) * s.nKvHeads;
  const projections = s.nLayers * (2 * s.dim * s.dim + 2 * s.dim * kv + 3 * s.dim * s.hiddenDim);
  return { projections, total: projections + s.vocabSize * s.dim + (2 * s.nLayers + 1) * s.dim };
}

/** tokenizer.bin with unused pieces appended up to `vocabSize`, so the head has Llama's width. */
function paddedTokenizer(texts: string[], spec: BenchSpec): Buffer {
  const { bytes, vocabSize } = tokenizerBin(texts, spec.merges);
  if (vocabSize > spec.vocabSize) throw new Error(`the learnt vocabulary (${vocabSize}) is larger than vocabSize ${spec.vocabSize}`);
  const extra: Buffer[] = [];
  let maxLen = bytes.readInt32LE(0);
  for (let id = vocabSize; id < spec.vocabSize; id++) {
    const s = Buffer.from(`<unused${id}>`, 'utf8');
    const h = Buffer.alloc(8);
    h.writeFloatLE(-1e9, 0);
    h.writeInt32LE(s.length, 4);
    extra.push(h, s);
    maxLen = Math.max(maxLen, s.length);
  }
  const out = Buffer.concat([bytes, ...extra]);
  out.writeInt32LE(maxLen, 0);
  return out;
}

export interface RunShape {
  batch: number;
  seq: number;
  steps: number;
}

function qloraFile(o: { backend: string; run: string; shape: RunShape }): string {
  return configText({
    model: { base: './model', quantization: 'nf4', double_quant: true, block_size: 64 },
    lora: { r: 16, alpha: 32, dropout: 0, target_modules: 'all-linear' },
    data: { train: './data/train.jsonl', format: 'text', validation_split: 0, max_seq_len: o.shape.seq },
    training: {
      max_steps: o.shape.steps, micro_batch_size: o.shape.batch, gradient_accumulation_steps: 1, learning_rate: 2e-4,
      lr_scheduler: 'cosine', warmup_steps: 5, seed: 42, eval_every: 0, save_every: 0, backend: o.backend,
    },
    output: { dir: `./runs/${o.run}` },
  }, 'Written by test/bench/gpu/benchModel.ts.');
}

/**
 * The runs: `bench` (the timed run on webgpu), and `agree-webgpu` / `agree-wasm`, 20 steps
 * at a size the wasm backend finishes in a minute or two, whose losses must agree.
 */
export function writeBenchFolder(dir: string, spec: BenchSpec, bench: RunShape, agree: RunShape): void {
  mkdirSync(join(dir, 'model'), { recursive: true });
  mkdirSync(join(dir, 'data'), { recursive: true });
  // Each example is 40 log entries (about 1000 tokens), so that every row fills the
  // sequence; one short entry, because the loader refuses a set in which nothing fits.
  const logs = shipLogs(40 * 1200, 7);
  const examples = Array.from({ length: 1200 }, (_, i) => logs.slice(40 * i, 40 * i + 40).join(' '));
  examples.push(logs[0]);
  writeFileSync(join(dir, 'data', 'train.jsonl'), examples.map((text) => JSON.stringify({ text })).join('\n') + '\n');
  if (!existsSync(join(dir, 'model', 'bench.bin'))) {
    writeFileSync(join(dir, 'model', 'tok.bin'), paddedTokenizer(logs.slice(0, 2000), spec));
    writeFileSync(join(dir, 'model', 'bench.bin'), checkpointBin(spec, spec.vocabSize));
  }
  writeFileSync(join(dir, 'bench.qlora'), qloraFile({ backend: 'webgpu', run: 'bench', shape: bench }));
  for (const backend of ['webgpu', 'wasm']) {
    writeFileSync(join(dir, `agree-${backend}.qlora`), qloraFile({ backend, run: `agree-${backend}`, shape: agree }));
  }
  writeFileSync(join(dir, 'spec.json'), JSON.stringify({ spec, params: parameterCount(spec), bench, agree }, null, 2) + '\n');
}

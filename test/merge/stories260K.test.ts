// Issue 8's numerical acceptance on the real stories260K: an adapter trained briefly on the
// NF4 base through `qlora train`, merged by `qlora merge`, gives the logits of the model it
// was trained as. Merged float32 `--into dequantized` against base-NF4 + adapter, and
// `--into original` against base-fp32 + adapter, to max abs diff < 1e-4; the float16 merge
// against the float32 one within float16 rounding (relative error of the logits < 1e-3;
// its weights are the float32 merge's rounded to float16, value for value).
// Skips with a printed reason where ../shared is absent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { qlora } from '../helpers/cli';
import { stories260K } from '../helpers/shared';
import { shipLogs } from '../../server/demo/corpus';
import { loadModel } from '../../server/engine/formats/modelFolder';
import type { LoadedModel } from '../../server/engine/formats/types';
import { roundToFloat16 } from '../../server/engine/formats/halfFloat';
import { initBackend } from '../../server/engine/backend';
import { LlamaModel, type QuantizationOptions } from '../../server/engine/model/llama';
import { LoraAdapter } from '../../server/engine/lora/adapter';
import { readAdapter } from '../../server/engine/lora/peft';
import { tf } from '../../server/engine/tf';
import { folderHash } from './fixtures';

const shared = stories260K();
const STORY = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ' +
  'One day, she saw a big red ball under a tree. She ran to get it and laughed.';
const FP32: QuantizationOptions = { quantization: 'none', blockSize: 64, doubleQuant: false };

const config = (base: string) => `model:
  base: ${base}
  quantization: nf4
lora:
  r: 8
  alpha: 16
  dropout: 0.05
  target_modules: all-linear
data:
  train: ./train.jsonl
  format: text
  validation_split: 0
  max_seq_len: 64
training:
  max_steps: 8
  micro_batch_size: 4
  gradient_accumulation_steps: 1
  learning_rate: 1.0e-2
  warmup_steps: 1
  eval_every: 0
  save_every: 0
  backend: wasm
output:
  dir: ./run
`;

/** Logits (T, V) of one sequence. */
function logits(model: LlamaModel, ids: number[]): Float32Array {
  return tf.tidy(() => model.forward(tf.tensor2d([ids], [1, ids.length], 'int32')).dataSync() as Float32Array);
}

/** Largest difference, largest |b|, and the relative error ||a - b|| / ||b|| over all logits. */
function compare(a: Float32Array, b: Float32Array): { maxAbs: number; scale: number; relative: number } {
  let maxAbs = 0, scale = 0, d2 = 0, b2 = 0;
  for (let i = 0; i < a.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
    d2 += (a[i] - b[i]) ** 2;
    b2 += b[i] ** 2;
  }
  return { maxAbs, scale, relative: Math.sqrt(d2 / b2) };
}

test('stories260K, NF4-trained adapter: merged logits equal base + adapter (dequantized and original, < 1e-4); float16 within 1e-3',
  { skip: shared.skip }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qlora-merge-260k-'));
    try {
      writeFileSync(join(dir, 'train.jsonl'), shipLogs(80, 5).map((text) => JSON.stringify({ text })).join('\n') + '\n');
      writeFileSync(join(dir, 'run.qlora'), config(shared.dir));
      const t = qlora(['train', join(dir, 'run.qlora'), '--json']);
      assert.equal(t.code, 0, t.stderr);
      const adapterDir = join(dir, 'run', 'adapter');
      const baseHash = folderHash(shared.dir), adapterHash = folderHash(adapterDir);

      const merge = (name: string, ...args: string[]) => {
        const out = join(dir, name);
        const r = qlora(['merge', '--adapter', adapterDir, '--out', out, ...args]);
        assert.equal(r.code, 0, r.stderr);
        console.log(`# ${name}: ${r.stdout.trim().split('\n')[0]}`);
        return out;
      };
      const dq32 = merge('dq-f32', '--dtype', 'float32'); // --into dequantized is the default for this adapter
      const orig32 = merge('orig-f32', '--dtype', 'float32', '--into', 'original');
      const dq16 = merge('dq-f16', '--dtype', 'float16', '--into', 'dequantized');
      assert.equal(JSON.parse(readFileSync(join(dq16, 'config.json'), 'utf8')).torch_dtype, 'float16');
      assert.equal(folderHash(shared.dir), baseHash, 'base untouched');
      assert.equal(folderHash(adapterDir), adapterHash, 'adapter untouched');

      await initBackend('wasm');
      const base = await loadModel(shared.dir);
      const adapter = readAdapter(adapterDir);
      assert.deepEqual(adapter.baseQuantization, { quantization: 'nf4', block_size: 64, double_quant: true });
      const ids = base.tokenizer.encode(STORY, { bos: true });
      const withAdapter = (quant: QuantizationOptions) => {
        const m = LlamaModel.fromLoaded(base, quant);
        m.lora = LoraAdapter.fromPeftTensors(base.config, adapter.config, adapter.tensors, adapterDir);
        const l = logits(m, ids);
        m.dispose();
        return l;
      };
      const merged = async (folder: string | LoadedModel) => {
        const m = LlamaModel.fromLoaded(typeof folder === 'string' ? await loadModel(folder) : folder, FP32);
        const l = logits(m, ids);
        m.dispose();
        return l;
      };
      const nf4Adapter = withAdapter({ quantization: 'nf4', blockSize: 64, doubleQuant: true });
      const fp32Adapter = withAdapter(FP32);
      const baseOnly = LlamaModel.fromLoaded(base, { quantization: 'nf4', blockSize: 64, doubleQuant: true });
      const nf4Base = logits(baseOnly, ids);
      baseOnly.dispose();

      const dq = compare(await merged(dq32), nf4Adapter);
      const orig = compare(await merged(orig32), fp32Adapter);
      const half = compare(await merged(dq16), await merged(dq32));
      // The float16 merge is the float32 merge rounded to float16, value for value, and nothing else.
      const f32 = await loadModel(dq32), f16 = await loadModel(dq16);
      for (const [name, t] of f32.weights) {
        const got = f16.weights.get(name)!.data;
        const first = t.data.findIndex((x, i) => roundToFloat16(x) !== got[i]);
        assert.equal(first, -1, `${name}[${first}]: ${got[first]} is not float16(${t.data[first]})`);
      }
      const adapterEffect = compare(nf4Adapter, nf4Base);
      const crossed = compare(await merged(orig32), nf4Adapter);
      console.log(`# ${ids.length} tokens x ${base.config.vocabSize} logits (max |logit| ${dq.scale.toFixed(2)}); the adapter moves them by up to ${adapterEffect.maxAbs.toFixed(4)}`);
      console.log(`# dequantized f32 vs base-NF4 + adapter: max abs diff ${dq.maxAbs.toExponential(2)}`);
      console.log(`# original f32 vs base-fp32 + adapter:   max abs diff ${orig.maxAbs.toExponential(2)}`);
      console.log(`# float16 vs float32 merge: relative ||diff|| / ||logits|| ${half.relative.toExponential(2)}; ` +
        `max abs diff ${half.maxAbs.toExponential(2)} = ${(half.maxAbs / half.scale).toExponential(2)} of max |logit|`);
      console.log(`# (original merge vs what training saw, NF4 + adapter: ${crossed.maxAbs.toExponential(2)})`);
      assert.ok(adapterEffect.maxAbs > 1e-2, 'the trained adapter changes the logits, so the comparison means something');
      assert.ok(dq.maxAbs < 1e-4, `dequantized: ${dq.maxAbs}`);
      assert.ok(orig.maxAbs < 1e-4, `original: ${orig.maxAbs}`);
      assert.ok(half.relative < 1e-3, `float16: relative ${half.relative}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

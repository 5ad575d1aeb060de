// Streaming load (issue 19) and validation before allocation (issue 20 findings 3 and 8):
// headers are checked against config.json before any tensor data is read, duplicate keys
// are refused, unused tensors are never read, absurd config sizes fail fast against the
// tensors present, and corrupted weights fail at load or in eval instead of giving NaN.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHuggingFaceFolder } from '../../server/engine/formats/hfWriter';
import { loadModel } from '../../server/engine/formats/modelFolder';
import { firstDuplicateKey, readSafetensors, readSafetensorsHeader } from '../../server/engine/formats/safetensors';
import { ModelFormatError } from '../../server/engine/formats/types';
import { LlamaModel } from '../../server/engine/model/llama';
import { evaluateIds, evalWindow } from '../../server/engine/evaluate';
import { initBackend } from '../../server/engine/backend';
import { TINY, writeTinyCheckpoint, writeTinyTokenizer } from './llama2cFixtures';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-stream-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A Hugging Face folder (float32 safetensors) converted from the tiny llama2.c model. */
async function tinyHf(root: string): Promise<string> {
  const l2c = join(root, 'l2c');
  mkdirSync(l2c, { recursive: true });
  writeTinyCheckpoint(join(l2c, 'model.bin'), TINY, 0, true);
  writeTinyTokenizer(join(l2c, 'tokenizer.bin'));
  return writeHuggingFaceFolder(join(root, 'hf'), await loadModel(l2c), { dtype: 'F32' });
}

/** Rewrites a safetensors file with a new header (JSON text) and the same or new data. */
function rewrite(file: string, edit: (header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>, data: Buffer) => { text?: string; data?: Buffer } | void): void {
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  let data: Buffer = bytes.subarray(8 + n);
  const out = edit(header, data) ?? {};
  if (out.data) data = out.data;
  const json = Buffer.from(out.text ?? JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, json, data]));
}

const isFormatError = (...phrases: string[]) => (err: unknown) => {
  assert.ok(err instanceof ModelFormatError, `expected a ModelFormatError, got ${err}`);
  for (const p of phrases) assert.ok(err.message.includes(p), `message mentions "${p}": ${err.message}`);
  return true;
};

test('the duplicate-key scan finds repeated top-level keys only', () => {
  assert.equal(firstDuplicateKey('{"a":{"x":1,"x":2},"b":{}}'), undefined);
  assert.equal(firstDuplicateKey('{"a":{},"b":[1,{"a":2}],"a":{}}'), 'a');
  assert.equal(firstDuplicateKey('{"a\\"b":{"s":"{\\"a\\":1"},"a\\"b":{}}'), 'a"b');
  assert.equal(firstDuplicateKey('{}'), undefined);
});

test('a duplicated tensor key is refused, naming the tensor (JSON would silently keep the last)', async (t) => {
  const dir = await tinyHf(tempDir(t));
  const file = join(dir, 'model.safetensors');
  rewrite(file, (h) => {
    const text = JSON.stringify(h);
    const norm = 'model.norm.weight';
    // The same key again, pointing at the same bytes.
    return { text: text.slice(0, -1) + `,${JSON.stringify(norm)}:${JSON.stringify(h[norm])}}` };
  });
  assert.throws(() => readSafetensorsHeader(file), isFormatError('model.norm.weight', 'twice'));
  await assert.rejects(loadModel(dir), isFormatError('model.norm.weight', 'twice'));
});

test('an unused 2 GiB tensor fails the config check before any data is read', async (t) => {
  const dir = await tinyHf(tempDir(t));
  const file = join(dir, 'model.safetensors');
  // Declare a 2 GiB tensor and make the file that long with a sparse tail (no disk, no RAM).
  let dataLength = 0;
  rewrite(file, (h, data) => {
    dataLength = data.length;
    h['model.extra.weight'] = { dtype: 'F32', shape: [1 << 19, 1024], data_offsets: [data.length, data.length + 2 ** 31] };
  });
  const { truncateSync, statSync } = await import('node:fs');
  truncateSync(file, statSync(file).size + 2 ** 31);
  const before = process.memoryUsage();
  await assert.rejects(loadModel(dir), isFormatError('unexpected tensor "model.extra.weight"'));
  const grown = process.memoryUsage().arrayBuffers - before.arrayBuffers;
  assert.ok(grown < 256 * 2 ** 20, `loading allocated ${grown} bytes of array buffers before refusing (data section ${dataLength} bytes)`);
});

test('tensors are read on first use, only once, and only those the model uses', async (t) => {
  const dir = await tinyHf(tempDir(t));
  const loaded = await loadModel(dir);
  const eager = readSafetensors(join(dir, 'model.safetensors')).tensors;
  assert.deepEqual([...loaded.weights.keys()].sort(), [...eager.keys()].sort());
  for (const [name, t0] of eager) {
    const lazy = loaded.weights.get(name)!;
    assert.deepEqual(lazy.shape, t0.shape);
    const first = lazy.data;
    assert.deepEqual(Array.from(first), Array.from(t0.data));
    assert.equal(lazy.data, first, `${name}: a second use reads nothing again`);
  }
  // Only the last tensor read is held: going back to an earlier one reads it afresh.
  const [a, b] = [...loaded.weights.values()];
  const aData = a.data;
  void b.data;
  assert.notEqual(a.data, aData);
  assert.deepEqual(a.data, aData);
});

test('num_hidden_layers 1e9 and a huge vocab fail at once against the tensors present', async (t) => {
  const dir = await tinyHf(tempDir(t));
  const configFile = join(dir, 'config.json');
  const config = JSON.parse(readFileSync(configFile, 'utf8'));
  writeFileSync(configFile, JSON.stringify({ ...config, num_hidden_layers: 1_000_000_000 }));
  await assert.rejects(loadModel(dir), isFormatError('num_hidden_layers 1000000000', `${TINY.nLayers} blocks`));
  writeFileSync(configFile, JSON.stringify({ ...config, vocab_size: 2_000_000_000 }));
  await assert.rejects(loadModel(dir), (err: unknown) => err instanceof ModelFormatError && /vocab|embed_tokens/.test(err.message));
});

test('a NaN in the weights is refused at load, naming the tensor', async (t) => {
  await initBackend('cpu');
  const dir = await tinyHf(tempDir(t));
  const file = join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const h = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  const at = 8 + n + h['model.layers.0.mlp.up_proj.weight'].data_offsets[0];
  bytes.writeFloatLE(Number.NaN, at + 12);
  writeFileSync(file, bytes);
  const loaded = await loadModel(dir); // headers are fine
  assert.throws(() => LlamaModel.fromLoaded(loaded), isFormatError('model.layers.0.mlp.up_proj.weight', 'NaN', 'corrupted'));
});

test('weights that overflow to a non-finite loss make eval an error, not a result', async (t) => {
  await initBackend('cpu');
  const dir = await tinyHf(tempDir(t));
  const file = join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const h = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  const [begin, end] = h['model.layers.0.input_layernorm.weight'].data_offsets;
  for (let at = 8 + n + begin; at < 8 + n + end; at += 4) bytes.writeFloatLE(3e38, at);
  writeFileSync(file, bytes);
  const loaded = await loadModel(dir);
  const model = LlamaModel.fromLoaded(loaded, { quantization: 'none', blockSize: 64, doubleQuant: false });
  t.after(() => model.dispose());
  await assert.rejects(evaluateIds(model, [1, 5, 9, 13, 7, 3]), /non-finite|NaN|Infinity/);
});

test('eval windows by min(context, the budgeted length) and says when it shortened', () => {
  const qwen = {
    family: 'qwen2' as const, vocabSize: 151936, hiddenSize: 896, intermediateSize: 4864, numLayers: 24, numHeads: 14,
    numKvHeads: 2, headDim: 64, maxPositionEmbeddings: 65536, rmsNormEps: 1e-6, ropeTheta: 1e6, tieWordEmbeddings: true, attentionBias: true,
  };
  const quant = { quantization: 'nf4' as const, blockSize: 64, doubleQuant: true };
  const w = evalWindow(qwen, quant, 'wasm');
  assert.ok(w.window <= 4096 && w.window >= 256, `window ${w.window}`);
  assert.match(w.shortened ?? '', /instead of the model's context of 65536/);
  const huge = evalWindow({ ...qwen, maxPositionEmbeddings: 10_000_000 }, quant, 'wasm');
  assert.ok(huge.window <= 4096);
  assert.ok(huge.shortened);
  const small = evalWindow({ ...qwen, maxPositionEmbeddings: 512 }, quant, 'wasm');
  assert.deepEqual(small, { window: 512 });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { permuteRotaryRows, readLlama2cCheckpoint, readLlama2cHeader } from '../../server/engine/formats/llama2c';
import { ModelFormatError } from '../../server/engine/formats/types';
import { countParameters } from '../../server/engine/model/config';
import { Llama2cTokenizer } from '../../server/engine/tokenizer/llama2c';
import { referenceLogits } from '../helpers/reference';
import { stories260K } from '../helpers/shared';
import { fileOrder, numel, offsets, TINY, tinyCheckpointBytes, writeTinyCheckpoint } from './llama2cFixtures';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-l2c-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** llama2.c tensor name -> Hugging Face name. */
const HF_NAME: Record<string, string> = {
  tok_embeddings: 'model.embed_tokens.weight',
  attention_norm: 'model.layers.L.input_layernorm.weight',
  ffn_norm: 'model.layers.L.post_attention_layernorm.weight',
  wq: 'model.layers.L.self_attn.q_proj.weight',
  wk: 'model.layers.L.self_attn.k_proj.weight',
  wv: 'model.layers.L.self_attn.v_proj.weight',
  wo: 'model.layers.L.self_attn.o_proj.weight',
  w1: 'model.layers.L.mlp.gate_proj.weight',
  w2: 'model.layers.L.mlp.down_proj.weight',
  w3: 'model.layers.L.mlp.up_proj.weight',
  norm: 'model.norm.weight',
  output: 'lm_head.weight',
};

test('permuteRotaryRows moves interleaved pairs to rotate_half halves, head by head', () => {
  // 2 heads of head_dim 6, 1 column: row r holds r.
  const w = Float32Array.from({ length: 12 }, (_, r) => r);
  assert.deepEqual([...permuteRotaryRows(w, 2, 1)], [0, 2, 4, 1, 3, 5, 6, 8, 10, 7, 9, 11]);
  // Whole rows move: 1 head of head_dim 4, 3 columns.
  const m = Float32Array.from({ length: 12 }, (_, i) => i);
  assert.deepEqual([...permuteRotaryRows(m, 1, 3)], [0, 1, 2, 6, 7, 8, 3, 4, 5, 9, 10, 11]);
});

for (const version of [0, 1] as const) {
  for (const shared of [true, false]) {
    test(`version ${version} checkpoint, ${shared ? 'shared' : 'separate'} classifier: every tensor from its place, q/k rows permuted`, (t) => {
      const file = join(tempDir(t), 'model.bin');
      writeTinyCheckpoint(file, TINY, version, shared);
      const { config, weights } = readLlama2cCheckpoint(file);
      assert.deepEqual(config, {
        family: 'llama', vocabSize: 272, hiddenSize: 8, intermediateSize: 12, numLayers: 2, numHeads: 2, numKvHeads: 1, headDim: 4,
        maxPositionEmbeddings: 16, rmsNormEps: 1e-5, ropeTheta: 10000, tieWordEmbeddings: shared, attentionBias: false, bosTokenId: 1, eosTokenId: 2,
      });
      const order = fileOrder(TINY, version, shared).filter((x) => !x.name.startsWith('freqs'));
      const at = offsets(fileOrder(TINY, version, shared));
      assert.equal(weights.size, order.length);
      for (const x of order) {
        const name = HF_NAME[x.name].replace('.L.', `.${x.layer}.`);
        const tensor = weights.get(name);
        assert.ok(tensor, `${name} is present`);
        assert.deepEqual(tensor.shape, x.shape, name);
        const start = at.get(`${x.name}.${x.layer}`)!;
        const [rows, cols] = x.shape.length === 2 ? x.shape : [1, x.shape[0]];
        const heads = x.name === 'wq' ? TINY.nHeads : x.name === 'wk' ? TINY.nKvHeads : 0;
        const half = rows / (heads || 1) / 2;
        for (let r = 0; r < rows; r++) {
          // Hugging Face row r = (head h, half j, pair i) holds llama2.c row h*hd + 2i + j.
          let source = r;
          if (heads) {
            const h = Math.floor(r / (2 * half));
            const j = Math.floor((r % (2 * half)) / half);
            const i = r % half;
            source = h * 2 * half + 2 * i + j;
          }
          for (let c = 0; c < cols; c++) {
            assert.equal(tensor.data[r * cols + c], start + source * cols + c, `${name}[${r}, ${c}]`);
          }
        }
      }
      assert.equal(weights.has('lm_head.weight'), !shared);
      assert.equal(countParameters(config).total, [...weights.values()].reduce((n, w) => n + w.data.length, 0));
    });
  }
}

function assertFormatError(fn: () => unknown, file: string, ...phrases: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ModelFormatError, `expected a ModelFormatError, got ${err}`);
    assert.equal(err.file, file);
    assert.ok(err.message.includes(file), err.message);
    for (const p of phrases) assert.ok(err.message.includes(p), `message mentions "${p}": ${err.message}`);
    return true;
  });
}

test('truncated, overlong, int8 and non-checkpoint files are refused with sizes and reasons', (t) => {
  const dir = tempDir(t);
  const good = tinyCheckpointBytes(TINY, 0, true);
  const truncated = join(dir, 'truncated.bin');
  writeFileSync(truncated, good);
  truncateSync(truncated, good.length - 100);
  assertFormatError(() => readLlama2cCheckpoint(truncated), truncated, `expected ${good.length} bytes`, `has ${good.length - 100} bytes (truncated)`);

  const long = join(dir, 'long.bin');
  writeFileSync(long, good);
  appendFileSync(long, Buffer.alloc(8));
  assertFormatError(() => readLlama2cCheckpoint(long), long, `has ${good.length + 8} bytes (8 bytes too many)`);

  const v1 = tinyCheckpointBytes(TINY, 1, false);
  const cutV1 = join(dir, 'v1.bin');
  writeFileSync(cutV1, v1.subarray(0, v1.length - 4));
  assertFormatError(() => readLlama2cCheckpoint(cutV1), cutV1, 'version 1', 'truncated');

  const int8 = join(dir, 'q80.bin');
  const header = Buffer.from(v1.subarray(0, 256));
  header.writeInt32LE(2, 4);
  writeFileSync(int8, header);
  assertFormatError(() => readLlama2cCheckpoint(int8), int8, 'int8', 'version 2');

  const text = join(dir, 'notes.bin');
  writeFileSync(text, 'this is not a checkpoint at all, just some text');
  assertFormatError(() => readLlama2cCheckpoint(text), text, 'is not a llama2.c checkpoint');

  const short = join(dir, 'short.bin');
  writeFileSync(short, Buffer.alloc(10));
  assertFormatError(() => readLlama2cCheckpoint(short), short, 'too short');
});

test('stories260K: 260,032 parameters with the README shapes, tied classifier', (t) => {
  const model = stories260K();
  if (model.skip) return t.skip(model.skip);
  const file = join(model.dir, 'stories260K.bin');
  const header = readLlama2cHeader(file);
  assert.equal(header.version, 0);
  const { config, weights } = readLlama2cCheckpoint(file);
  assert.equal(config.tieWordEmbeddings, true);
  assert.equal(countParameters(config).total, 260_032);
  assert.equal([...weights.values()].reduce((n, w) => n + w.data.length, 0), 260_032);
  const shapes: Record<string, number[]> = {
    'model.embed_tokens.weight': [512, 64],
    'model.layers.4.input_layernorm.weight': [64],
    'model.layers.0.self_attn.q_proj.weight': [64, 64],
    'model.layers.0.self_attn.k_proj.weight': [32, 64],
    'model.layers.0.self_attn.v_proj.weight': [32, 64],
    'model.layers.0.self_attn.o_proj.weight': [64, 64],
    'model.layers.2.mlp.gate_proj.weight': [172, 64],
    'model.layers.2.mlp.down_proj.weight': [64, 172],
    'model.layers.2.mlp.up_proj.weight': [172, 64],
    'model.layers.3.post_attention_layernorm.weight': [64],
    'model.norm.weight': [64],
  };
  for (const [name, shape] of Object.entries(shapes)) assert.deepEqual(weights.get(name)?.shape, shape, name);
  assert.equal(weights.size, 1 + 5 * 9 + 1);
  // The embedding is the first thing after the 28-byte header.
  assert.equal(weights.get('model.embed_tokens.weight')!.data[0], readFileSync(file).readFloatLE(28));
});

test('stories260K in version 1 layout reads the same weights as the legacy file', (t) => {
  const model = stories260K();
  if (model.skip) return t.skip(model.skip);
  const legacyFile = join(model.dir, 'stories260K.bin');
  const legacy = readFileSync(legacyFile);
  const d = { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512 };
  // Rearrange the legacy data into version1_export's order, section by section.
  const legacyAt = offsets(fileOrder(d, 0, true));
  const parts: Buffer[] = [tinyCheckpointBytes(d, 1, true).subarray(0, 256)];
  for (const x of fileOrder(d, 1, true)) {
    const start = 28 + 4 * legacyAt.get(`${x.name}.${x.layer}`)!;
    parts.push(legacy.subarray(start, start + 4 * numel(x.shape)));
  }
  const v1File = join(tempDir(t), 'stories260K-v1.bin');
  writeFileSync(v1File, Buffer.concat(parts));
  const a = readLlama2cCheckpoint(legacyFile);
  const b = readLlama2cCheckpoint(v1File);
  assert.deepEqual(b.config, a.config);
  assert.deepEqual(b.weights, a.weights);
});

test('stories260K after the permutation greedily decodes the known story opening (rotate_half reference model)', (t) => {
  const model = stories260K();
  if (model.skip) return t.skip(model.skip);
  const { config, weights } = readLlama2cCheckpoint(join(model.dir, 'stories260K.bin'));
  const tokenizer = Llama2cTokenizer.fromFile(join(model.dir, 'tok512.bin'));
  const ids = [tokenizer.bosId];
  const V = config.vocabSize;
  for (let step = 0; step < 20; step++) {
    const logits = referenceLogits(config, weights, ids);
    const last = logits.subarray((ids.length - 1) * V, ids.length * V);
    let best = 0;
    for (let v = 1; v < V; v++) if (last[v] > last[best]) best = v;
    ids.push(best);
  }
  assert.ok(tokenizer.decode(ids).startsWith('Once upon a time, there was a little girl named Lily.'), tokenizer.decode(ids));
});

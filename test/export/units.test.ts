// The GGUF export's parts on their own: the block quantizers against a plain decoding of
// their bytes written here (ggml's block layouts), the error they report, the file header
// against an independent parser (@huggingface/gguf), and the q/k row order against the
// llama2.c importer's permutation it inverts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gguf } from '@huggingface/gguf';
import { quantizeTensor } from '../../server/engine/export/blockQuant';
import { GGML, typeFor, EXPORT_TYPES, type ExportType } from '../../server/engine/export/ggmlTypes';
import { GgufStreamWriter, type GgufValue } from '../../server/engine/export/ggufWriter';
import { interleaveRotaryRows, ggufTensorName } from '../../server/engine/export/tensorNames';
import { permuteRotaryRows } from '../../server/engine/formats/llama2c';
import { Rng } from '../../server/engine/rng';

const root = mkdtempSync(join(tmpdir(), 'qlora-export-units-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

/** IEEE half to number, from the bit fields (no table). */
function half(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Decodes ggml blocks value by value, as ggml-common.h lays them out. */
function plainDecode(type: ExportType, b: Uint8Array, n: number): number[] {
  const u16 = (at: number) => b[at] | (b[at + 1] << 8);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const blk = Math.floor(i / 32), j = i % 32;
    if (type === 'f32') out.push(new DataView(b.buffer, b.byteOffset).getFloat32(4 * i, true));
    else if (type === 'f16') out.push(half(u16(2 * i)));
    else if (type === 'bf16') out.push(new Float32Array(new Uint32Array([u16(2 * i) << 16]).buffer)[0]);
    else if (type === 'q8_0') { const at = blk * 34; const q = b[at + 2 + j]; out.push(half(u16(at)) * (q > 127 ? q - 256 : q)); }
    else if (type === 'q4_0') { const at = blk * 18; const byte = b[at + 2 + (j % 16)]; const q = j < 16 ? byte & 15 : byte >> 4; out.push(half(u16(at)) * (q - 8)); }
    else { const at = blk * 20; const byte = b[at + 4 + (j % 16)]; const q = j < 16 ? byte & 15 : byte >> 4; out.push(half(u16(at)) * q + half(u16(at + 2))); }
  }
  return out;
}

test('block quantizers: bytes decode (plainly) to values within each type\'s step, and the reported RMSE is the error of those values', () => {
  const rng = new Rng(3);
  const rows = 4, cols = 96;
  const x = Float32Array.from({ length: rows * cols }, (_, i) => (i % 37 === 0 ? 2.5 : 0.05 * rng.normal()));
  for (const type of EXPORT_TYPES) {
    const { bytes, error } = quantizeTensor(type, x, cols);
    assert.equal(bytes.length, (x.length / GGML[type].blockSize) * GGML[type].blockBytes, type);
    const dec = plainDecode(type, bytes, x.length);
    let se = 0, maxAbs = 0;
    for (let i = 0; i < x.length; i++) { se += (dec[i] - x[i]) ** 2; maxAbs = Math.max(maxAbs, Math.abs(dec[i] - x[i])); }
    const rmse = Math.sqrt(se / x.length);
    assert.ok(Math.abs(rmse - error.rmse) <= 1e-9 + 1e-6 * rmse, `${type}: reported RMSE ${error.rmse}, decoded ${rmse}`);
    assert.ok(Math.abs(maxAbs - error.maxAbs) <= 1e-9 + 1e-6 * maxAbs, `${type}: max error`);
    // Per block: an error of at most half a step (plus float16 rounding of the scale).
    for (let b = 0; b < x.length; b += 32) {
      const blk = Array.from(x.subarray(b, b + 32));
      const amax = Math.max(...blk.map(Math.abs)), lo = Math.min(...blk), hi = Math.max(...blk);
      const step = type === 'q8_0' ? amax / 127 : type === 'q4_0' ? amax / 8 : type === 'q4_1' ? (hi - lo) / 15 : type === 'f16' ? amax * 2 ** -10 : type === 'bf16' ? amax * 2 ** -7 : 0;
      for (let j = 0; j < 32; j++) {
        const e = Math.abs(dec[b + j] - x[b + j]);
        assert.ok(e <= step * (type === 'q4_0' || type === 'q4_1' ? 1.01 : 0.51) + 1e-3 * amax, `${type} block ${b / 32} value ${j}: error ${e}, step ${step}`);
      }
    }
    console.log(`# ${type}: ${bytes.length} bytes for ${x.length} values, RMSE ${error.rmse.toExponential(3)} (relative ${(error.rmse / error.rms).toExponential(3)})`);
  }
});

test('Q8_0 and Q4_0 of a known block: the exact bytes ggml writes', () => {
  const x = Float32Array.from({ length: 32 }, (_, j) => j - 16); // -16 .. 15
  const q8 = quantizeTensor('q8_0', x, 32).bytes;
  assert.equal(half(q8[0] | (q8[1] << 8)), Math.fround(half(0x3008))); // fp16(16/127) = 0x3008
  assert.deepEqual([...new Int8Array(q8.buffer, q8.byteOffset + 2, 32)], Array.from(x, (v) => { const t = v * (127 / 16); return t < 0 ? -Math.round(-t) : Math.round(t); }));
  const q4 = quantizeTensor('q4_0', x, 32).bytes;
  assert.equal(half(q4[0] | (q4[1] << 8)), 2); // d = -16 / -8
  // q = min(15, trunc(x / 2 + 8.5)): -16 -> 0, 15 -> 15; byte j = q[j] | q[j+16] << 4.
  const q = Array.from(x, (v) => Math.min(15, Math.trunc(v / 2 + 8.5)));
  assert.deepEqual([...q4.subarray(2)], Array.from({ length: 16 }, (_, j) => q[j] | (q[j + 16] << 4)));
});

test('typeFor: vectors stay f32, rows that are not whole blocks fall back to f16', () => {
  assert.equal(typeFor('q4_0', [64]), 'f32');
  assert.equal(typeFor('q4_0', [8, 64]), 'q4_0');
  assert.equal(typeFor('q8_0', [8, 48]), 'f16');
  assert.equal(typeFor('bf16', [8, 48]), 'bf16');
});

test('q/k rows: interleaving undoes the llama2.c importer\'s permutation, per head', () => {
  const rng = new Rng(5);
  const heads = 3, headDim = 8, cols = 5;
  const w = Float32Array.from({ length: heads * headDim * cols }, () => rng.normal());
  assert.deepEqual(interleaveRotaryRows(permuteRotaryRows(w, heads, cols), heads, cols), w);
  // Row h*hd + 2i + j of the output is row h*hd + j*hd/2 + i of the input.
  const out = interleaveRotaryRows(w, heads, cols);
  assert.deepEqual(out.subarray((8 + 3) * cols, (8 + 4) * cols), w.subarray((8 + 4 + 1) * cols, (8 + 4 + 2) * cols));
  assert.equal(ggufTensorName('model.layers.3.mlp.down_proj.weight'), 'blk.3.ffn_down.weight');
  assert.throws(() => ggufTensorName('model.layers.0.mlp.experts.weight'), /no GGUF name/);
});

test('GGUF header round-trips through @huggingface/gguf: every key, type and tensor info; data at the aligned offsets', async () => {
  const file = join(root, 'h.gguf');
  const kv = new Map<string, GgufValue>([
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['general.alignment', { type: 'u32', value: 32 }],
    ['t.i32', { type: 'i32', value: -7 }],
    ['t.f32', { type: 'f32', value: 1e-5 }],
    ['t.bool', { type: 'bool', value: true }],
    ['t.strings', { type: 'string[]', value: ['a', '▁b', '<0x0A>', ''] }],
    ['t.ints', { type: 'i32[]', value: [1, 2, 3] }],
    ['t.floats', { type: 'f32[]', value: [-1.5, 0] }],
  ]);
  const rng = new Rng(9);
  const tensors = EXPORT_TYPES.map((type, i) => ({ name: `t${i}.weight`, shape: [3, 64], type }));
  tensors.push({ name: 'norm.weight', shape: [7], type: 'f32' as ExportType });
  const w = new GgufStreamWriter(file, kv, tensors);
  const written: Uint8Array[] = [];
  for (const t of tensors) {
    const x = Float32Array.from({ length: t.shape.reduce((a, b) => a * b) }, () => rng.normal());
    const { bytes } = quantizeTensor(t.type, x, t.shape[t.shape.length - 1]);
    written.push(bytes.slice());
    w.write(t.name, bytes);
  }
  w.finish();
  assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('.')), [], 'no temporary file left');
  const parsed = await gguf(file, { allowLocalFile: true, typedMetadata: true });
  const md = parsed.typedMetadata as unknown as Record<string, { value: unknown; type: number; subType?: number }>;
  assert.equal(md.version.value, 3);
  assert.equal(md.tensor_count.value, BigInt(tensors.length));
  assert.equal(md.kv_count.value, BigInt(kv.size));
  assert.deepEqual([md['general.architecture'].value, md['general.alignment'].value, md['t.i32'].value, md['t.bool'].value], ['llama', 32, -7, true]);
  assert.equal(md['t.f32'].value, Math.fround(1e-5));
  assert.deepEqual(md['t.strings'].value, ['a', '▁b', '<0x0A>', '']);
  assert.deepEqual(md['t.ints'].value, [1, 2, 3]);
  assert.deepEqual(md['t.floats'].value, [-1.5, 0]);
  const bytes = readFileSync(file);
  const dataStart = Number(parsed.tensorDataOffset);
  assert.equal(dataStart % 32, 0);
  parsed.tensorInfos.forEach((info, i) => {
    assert.equal(info.name, tensors[i].name);
    assert.deepEqual(info.shape.map(Number), [...tensors[i].shape].reverse());
    assert.equal(info.dtype, GGML[tensors[i].type].id);
    const at = dataStart + Number(info.offset);
    assert.equal(Number(info.offset) % 32, 0);
    assert.deepEqual(bytes.subarray(at, at + written[i].length), Buffer.from(written[i]), `${info.name} data`);
  });
});

test('GGUF writer: a tensor out of order or of the wrong size is refused and nothing is left behind', () => {
  const file = join(root, 'bad.gguf');
  const w = new GgufStreamWriter(file, new Map(), [{ name: 'a', shape: [2, 32], type: 'q8_0' }, { name: 'b', shape: [4], type: 'f32' }]);
  assert.throws(() => w.write('b', new Uint8Array(16)), /out of order/);
  assert.throws(() => w.write('a', new Uint8Array(10)), /10 bytes for q8_0/);
  assert.throws(() => w.finish(), /finish\(\) after 0 of 2/);
  w.abort();
  assert.ok(!existsSync(file));
  assert.deepEqual(readdirSync(root).filter((n) => n.includes('bad.gguf')), []);
  writeFileSync(join(root, 'keep'), '');
});

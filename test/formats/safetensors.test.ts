import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  readSafetensors, readSafetensorsHeader, readSafetensorsSharded, writeSafetensors, writeSafetensorsSharded,
} from '../../server/engine/formats/safetensors';
import { roundToBfloat16, roundToFloat16 } from '../../server/engine/formats/halfFloat';
import { ModelFormatError, type WeightMap } from '../../server/engine/formats/types';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-st-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function tensors(entries: [string, number[], number[]][]): WeightMap {
  return new Map(entries.map(([name, shape, values]) => [name, { shape, data: Float32Array.from(values) }]));
}

/** Raw 16-bit words of a written file's data section. */
function dataWords(file: string): number[] {
  const bytes = readFileSync(file);
  const start = 8 + Number(bytes.readBigUInt64LE(0));
  const out: number[] = [];
  for (let at = start; at < bytes.length; at += 2) out.push(bytes.readUInt16LE(at));
  return out;
}

/** A safetensors file from a header object and a data section, for damaged-file cases. */
function craft(file: string, header: unknown, data: Buffer, headerText = JSON.stringify(header)): string {
  const json = Buffer.from(headerText, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([length, json, data]));
  return file;
}

function assertFormatError(fn: () => unknown, file: string, ...phrases: (string | RegExp)[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ModelFormatError, `expected a ModelFormatError, got ${err}`);
    assert.equal(err.file, file);
    assert.ok(err.message.includes(file), `message names the file: ${err.message}`);
    for (const p of phrases) {
      if (typeof p === 'string') assert.ok(err.message.includes(p), `message mentions "${p}": ${err.message}`);
      else assert.match(err.message, p);
    }
    return true;
  });
}

const SPECIALS = [0, -0, 1, -2.5, 3.4028234663852886e38, 1.401298464324817e-45, 1e-40, Infinity, -Infinity, NaN, 0.1, 65504, 1e-8];

test('F32 round trip is bit-exact, metadata survives, and the header is padded to 8 bytes', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'a.safetensors');
  const input = tensors([
    ['model.embed_tokens.weight', [3, 5], Array.from({ length: 15 }, (_, i) => Math.sin(i) * 1e3)],
    ['special', [SPECIALS.length], SPECIALS],
    ['scalar', [], [42]],
    ['empty', [0, 4], []],
  ]);
  writeSafetensors(file, input, { dtype: 'F32', metadata: { source: 'test' } });
  const { tensors: out, metadata } = readSafetensors(file);
  assert.deepEqual(metadata, { format: 'pt', source: 'test' });
  assert.deepEqual([...out.keys()], [...input.keys()]);
  for (const [name, t] of input) {
    const got = out.get(name)!;
    assert.deepEqual(got.shape, t.shape);
    assert.deepEqual(new Uint8Array(got.data.buffer, got.data.byteOffset, got.data.byteLength), new Uint8Array(t.data.buffer), name);
  }
  const headerLength = Number(readFileSync(file).readBigUInt64LE(0));
  assert.equal((8 + headerLength) % 8, 0);
  assert.deepEqual(readdirSync(dir), ['a.safetensors'], 'no temporary file is left behind');
});

test('F16 writing rounds to nearest even, with overflow, subnormals and NaN', (t) => {
  const file = join(tempDir(t), 'h.safetensors');
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [0.1, 0x2e66],
    [65504, 0x7bff], // largest float16
    [65519, 0x7bff], // just below the rounding boundary
    [65520, 0x7c00], // halfway to 2^16: ties to even, which is infinity
    [1e6, 0x7c00],
    [1 + 2 ** -11, 0x3c00], // halfway between 1 and its successor: even (down)
    [1 + 3 * 2 ** -11, 0x3c02], // halfway between odd 0x3c01 and even 0x3c02: up
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above halfway: up
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // halfway to the smallest subnormal: ties to even zero
    [1.5 * 2 ** -25, 0x0001],
    [3 * 2 ** -25, 0x0002], // halfway between subnormals 1 and 2: even
    [-0, 0x8000],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
  ];
  writeSafetensors(file, tensors([['x', [cases.length], cases.map((c) => c[0])]]), { dtype: 'F16' });
  const words = dataWords(file);
  cases.forEach(([value, bits], i) => assert.equal(words[i], bits, `float16 bits of ${value}: 0x${words[i].toString(16)}`));
  const back = readSafetensors(file).tensors.get('x')!.data;
  cases.forEach(([value], i) => assert.ok(Object.is(back[i], roundToFloat16(value)), `${value} reads back as ${back[i]}`));
  assert.equal(back[2], 0.0999755859375);

  writeSafetensors(file, tensors([['nan', [1], [NaN]]]), { dtype: 'F16' });
  assert.ok(Number.isNaN(readSafetensors(file).tensors.get('nan')!.data[0]));
});

test('BF16 writing rounds to nearest even and keeps NaN a NaN', (t) => {
  const file = join(tempDir(t), 'b.safetensors');
  const cases: [number, number][] = [
    [1, 0x3f80],
    [0.1, 0x3dcd],
    [-3.5, 0xc060],
    [1 + 2 ** -8, 0x3f80], // halfway: even (down)
    [1 + 3 * 2 ** -8, 0x3f82], // halfway between odd and even: up
    [1 + 2 ** -8 + 2 ** -20, 0x3f81],
    [3.4028234663852886e38, 0x7f80], // float32 max rounds past bfloat16 max
    [-0, 0x8000],
    [Infinity, 0x7f80],
  ];
  writeSafetensors(file, tensors([['x', [cases.length], cases.map((c) => c[0])], ['nan', [1], [NaN]]]), { dtype: 'BF16' });
  const words = dataWords(file);
  cases.forEach(([value, bits], i) => assert.equal(words[i], bits, `bfloat16 bits of ${value}: 0x${words[i].toString(16)}`));
  const { tensors: back } = readSafetensors(file);
  cases.forEach(([value], i) => assert.ok(Object.is(back.get('x')!.data[i], roundToBfloat16(value))));
  assert.ok(Number.isNaN(back.get('nan')!.data[0]));
});

test('F16 and BF16 round trips of random weights stay within half an ulp', (t) => {
  const dir = tempDir(t);
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 4;
  const values = Array.from({ length: 4096 }, random);
  for (const [dtype, relative] of [['F16', 2 ** -11], ['BF16', 2 ** -8]] as const) {
    const file = join(dir, `${dtype}.safetensors`);
    writeSafetensors(file, tensors([['w', [64, 64], values]]), { dtype });
    const back = readSafetensors(file).tensors.get('w')!;
    assert.deepEqual(back.shape, [64, 64]);
    let worst = 0;
    values.forEach((v, i) => (worst = Math.max(worst, Math.abs(back.data[i] - v) / Math.max(Math.abs(v), 2 ** -14))));
    assert.ok(worst <= relative, `${dtype}: largest relative error ${worst} > ${relative}`);
  }
});

test('F64 tensors are read as float32', (t) => {
  const file = join(tempDir(t), 'd.safetensors');
  const data = Buffer.alloc(16);
  data.writeDoubleLE(1.5, 0);
  data.writeDoubleLE(-1e-3, 8);
  craft(file, { d: { dtype: 'F64', shape: [2], data_offsets: [0, 16] } }, data);
  assert.deepEqual([...readSafetensors(file).tensors.get('d')!.data], [1.5, Math.fround(-1e-3)]);
});

test('sharded round trip: shard files, index, and identical tensors', (t) => {
  const dir = tempDir(t);
  const input = tensors(Array.from({ length: 5 }, (_, i) => [`layer.${i}.weight`, [10, 10], Array.from({ length: 100 }, (_, j) => i * 100 + j)] as [string, number[], number[]]));
  const written = writeSafetensorsSharded(dir, input, { dtype: 'F32', maxShardBytes: 850 });
  assert.deepEqual(readdirSync(dir).sort(), [
    'model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', 'model.safetensors.index.json',
  ]);
  assert.equal(written.files.length, 3);
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
  assert.equal(index.metadata.total_size, 5 * 400);
  assert.equal(index.weight_map['layer.4.weight'], 'model-00003-of-00003.safetensors');
  const { tensors: back } = readSafetensorsSharded(dir);
  assert.deepEqual([...back.keys()].sort(), [...input.keys()].sort());
  for (const [name, t] of input) assert.deepEqual(back.get(name), t);

  const single = join(dir, 'one');
  mkdirSync(single);
  const one = writeSafetensorsSharded(single, input, { dtype: 'BF16', maxShardBytes: 1e9 });
  assert.deepEqual(readdirSync(single), ['model.safetensors'], 'everything in one shard is written as model.safetensors');
  assert.equal(one.index, undefined);
});

test('a shard index naming a tensor its shard lacks is refused', (t) => {
  const dir = tempDir(t);
  writeSafetensorsSharded(dir, tensors([['a', [1], [1]], ['b', [1], [2]]]), { dtype: 'F32', maxShardBytes: 4 });
  const indexFile = join(dir, 'model.safetensors.index.json');
  const index = JSON.parse(readFileSync(indexFile, 'utf8'));
  index.weight_map.c = 'model-00001-of-00002.safetensors';
  writeFileSync(indexFile, JSON.stringify(index));
  assertFormatError(() => readSafetensorsSharded(dir), indexFile, '"c"', 'does not contain it');
  index.weight_map.c = '../elsewhere.safetensors';
  writeFileSync(indexFile, JSON.stringify(index));
  assertFormatError(() => readSafetensorsSharded(dir), indexFile, 'not a file name in the same folder');
});

test('a failed write leaves no temporary file and the destination untouched', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'x.safetensors');
  mkdirSync(file); // a folder where the file should go: the final rename fails
  assert.throws(() => writeSafetensors(file, tensors([['a', [2], [1, 2]]]), { dtype: 'F32' }));
  assert.deepEqual(readdirSync(dir), ['x.safetensors']);
  assert.throws(() => writeSafetensors(join(dir, 'y.safetensors'), tensors([['a', [3], [1, 2]]]), { dtype: 'F32' }), /shape \[3\] does not match its 2 values/);
  assert.ok(!existsSync(join(dir, 'y.safetensors')));
});

test('damaged files give one ModelFormatError naming the file and the problem', async (t) => {
  const dir = tempDir(t);
  const f = (name: string) => join(dir, name);
  const eight = Buffer.alloc(8);
  const ok = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };

  writeFileSync(f('tiny'), Buffer.from([1, 2, 3]));
  assertFormatError(() => readSafetensors(f('tiny')), f('tiny'), 'too short');

  const pastEnd = Buffer.alloc(16);
  pastEnd.writeBigUInt64LE(1n << 40n);
  writeFileSync(f('past-eof'), pastEnd);
  assertFormatError(() => readSafetensors(f('past-eof')), f('past-eof'), 'header length 1099511627776 runs past the end of the file (16 bytes)');

  craft(f('bad-json'), null, eight, '{"w": {"dtype": "F32",');
  assertFormatError(() => readSafetensors(f('bad-json')), f('bad-json'), 'header is not valid JSON');

  craft(f('array'), [1, 2], eight);
  assertFormatError(() => readSafetensors(f('array')), f('array'), 'not a JSON object');

  craft(f('unknown-dtype'), { 'model.norm.weight': { dtype: 'Q9', shape: [2], data_offsets: [0, 8] } }, eight);
  assertFormatError(() => readSafetensors(f('unknown-dtype')), f('unknown-dtype'), '"model.norm.weight"', 'unknown dtype "Q9"');

  craft(f('int-dtype'), { ids: { dtype: 'I32', shape: [2], data_offsets: [0, 8] } }, eight);
  assertFormatError(() => readSafetensors(f('int-dtype')), f('int-dtype'), '"ids"', 'dtype I32 cannot be read as weights');

  craft(f('past-data'), { w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, eight);
  assertFormatError(() => readSafetensors(f('past-data')), f('past-data'), '"w"', 'run past the end of the data section (8 bytes)');

  craft(f('shape'), { w: { dtype: 'F16', shape: [3], data_offsets: [0, 8] } }, eight);
  assertFormatError(() => readSafetensors(f('shape')), f('shape'), '"w"', 'hold 8 bytes but shape [3] of F16 needs 6');

  craft(f('overlap'), { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, eight);
  assertFormatError(() => readSafetensors(f('overlap')), f('overlap'), 'overlap');

  craft(f('hole'), { a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, eight);
  assertFormatError(() => readSafetensors(f('hole')), f('hole'), 'bytes 0..4 of the data section belong to no tensor');

  craft(f('trailing'), ok, Buffer.alloc(12));
  assertFormatError(() => readSafetensors(f('trailing')), f('trailing'), 'data section is 12 bytes but its tensors end at byte 8');

  craft(f('offsets'), { w: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, eight);
  assertFormatError(() => readSafetensors(f('offsets')), f('offsets'), '"data_offsets" is not [begin, end]');

  craft(f('metadata'), { __metadata__: { n: 1 }, ...ok }, eight);
  assertFormatError(() => readSafetensors(f('metadata')), f('metadata'), '"__metadata__" key "n" is not a string');

  // A good file cut short: its header now points past the end.
  const cut = f('truncated.safetensors');
  writeSafetensors(cut, tensors([['model.embed_tokens.weight', [4, 4], Array.from({ length: 16 }, (_, i) => i)]]), { dtype: 'F32' });
  truncateSync(cut, readFileSync(cut).length - 4);
  assertFormatError(() => readSafetensors(cut), cut, '"model.embed_tokens.weight"', 'run past the end');
  assertFormatError(() => readSafetensorsHeader(cut), cut, 'run past the end');

  assertFormatError(() => readSafetensors(f('missing')), f('missing'), 'cannot open (ENOENT)');
});

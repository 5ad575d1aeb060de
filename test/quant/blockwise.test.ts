// The host reference implementations: statistical error as bitsandbytes pins it, the tie
// rule of its comparison trees, partial and all-zero blocks, double quantization, packing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endianness } from 'node:os';
import { Rng } from '../../server/engine/rng';
import { DYNAMIC_MAP, FP4_LEVELS, FP4_MAGNITUDE_CODES, FP4_MAGNITUDE_THRESHOLDS, NF4_LEVELS, NF4_THRESHOLDS } from '../../server/engine/quant/codebooks';
import {
  dequantize4bitReference, dequantizeAbsmaxReference, dequantizeBlockwise8bit, doubleQuantizeAbsmax, encodeDynamic,
  quantize4bit, quantizeBlockwise8bit,
} from '../../server/engine/quant/blockwise';
import { pack4bit, pack8bit, unpack4bit, unpack8bit } from '../../server/engine/quant/pack';

function standardNormal(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
}

function meanAbsError(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

const nextUp32 = (x: number): number => {
  const bits = new Float32Array([x]);
  const u = new Int32Array(bits.buffer);
  u[0] += x >= 0 ? 1 : -1;
  return bits[0];
};

test('NF4 round trip of a 1024x1024 standard normal at block size 64: MAE within 1% of 0.0728', () => {
  const w = standardNormal(1024 * 1024, 42);
  const opts = { quantType: 'nf4' as const, blockSize: 64 };
  const mae = meanAbsError(w, dequantize4bitReference(quantize4bit(w, opts), opts));
  console.log(`# NF4 MAE ${mae.toFixed(6)} (bitsandbytes: 0.0728)`);
  assert.ok(Math.abs(mae - 0.0728) <= 0.01 * 0.0728, `MAE ${mae}`);
});

test('FP4 round trip sanity: bitsandbytes bounds at block size 64, worse than NF4 on normal data', () => {
  const w = standardNormal(256 * 1024, 7);
  const fp4 = { quantType: 'fp4' as const, blockSize: 64 };
  const back = dequantize4bitReference(quantize4bit(w, fp4), fp4);
  const mae = meanAbsError(w, back);
  let rel = 0;
  for (let i = 0; i < w.length; i++) rel += Math.abs(w[i] - back[i]) / (Math.abs(w[i]) + 1e-8);
  rel /= w.length;
  const nf4 = { quantType: 'nf4' as const, blockSize: 64 };
  const maeNF4 = meanAbsError(w, dequantize4bitReference(quantize4bit(w, nf4), nf4));
  console.log(`# FP4 MAE ${mae.toFixed(6)}, mean relative error ${rel.toFixed(4)}; NF4 MAE ${maeNF4.toFixed(6)}`);
  // bitsandbytes test_4bit_quant, blocksize <= 64: err < 0.1, relerr < 0.28.
  assert.ok(mae < 0.1 && rel < 0.28);
  assert.ok(maeNF4 < mae);
});

test('NF4 codes follow the comparison tree: a value on a pivot takes the lower code', () => {
  for (let i = 0; i < 15; i++) {
    const t = NF4_THRESHOLDS[i];
    // absmax 1 makes the scale exactly 1, so the scaled values are the inputs.
    const { codes } = quantize4bit(Float32Array.of(1, t, nextUp32(t)), { quantType: 'nf4', blockSize: 64 });
    assert.deepEqual(Array.from(codes), [15, i, i + 1], `pivot ${i} (${t})`);
  }
});

test('FP4 codes: sign bit, then the magnitude pivots with ties going down', () => {
  for (let i = 0; i < 7; i++) {
    const t = FP4_MAGNITUDE_THRESHOLDS[i];
    const { codes } = quantize4bit(Float32Array.of(1, t, nextUp32(t), -t, -nextUp32(t)), { quantType: 'fp4', blockSize: 64 });
    const lo = FP4_MAGNITUDE_CODES[i];
    const hi = FP4_MAGNITUDE_CODES[i + 1];
    assert.deepEqual(Array.from(codes), [0b0011, lo, hi, lo | 8, hi | 8], `pivot ${i} (${t})`);
  }
});

test('every 4-bit code is the nearest level of the scaled value', () => {
  const w = standardNormal(64 * 200, 3);
  for (const quantType of ['nf4', 'fp4'] as const) {
    const levels = quantType === 'nf4' ? NF4_LEVELS : FP4_LEVELS;
    const { codes, absmax } = quantize4bit(w, { quantType, blockSize: 64 });
    for (let i = 0; i < w.length; i++) {
      const x = Math.fround(w[i] * Math.fround(1 / absmax[i >> 6]));
      const best = Math.min(...Array.from(levels, (l) => Math.abs(l - x)));
      // FP4's pivots are rounded decimals (0.583333), so allow their few-ulp offset.
      assert.ok(Math.abs(levels[codes[i]] - x) <= best + 1e-6, `${quantType} value ${i}: x=${x} code ${codes[i]}`);
    }
  }
});

test('partial last block and all-zero blocks', () => {
  const w = new Float32Array(64 + 64 + 36);
  w.set(standardNormal(64, 5), 0); // block 0: random; block 1: zeros; block 2: 36 values
  w.set(Float32Array.of(0.5, -2, 0.25), 128);
  for (const quantType of ['nf4', 'fp4'] as const) {
    const q = quantize4bit(w, { quantType, blockSize: 64 });
    assert.equal(q.absmax.length, 3);
    assert.equal(q.absmax[1], 0);
    assert.equal(q.absmax[2], 2);
    const zeroCode = quantType === 'nf4' ? 7 : 0;
    for (let i = 64; i < 128; i++) assert.equal(q.codes[i], zeroCode);
    const back = dequantize4bitReference(q, { quantType, blockSize: 64 });
    for (let i = 64; i < 128; i++) assert.ok(Object.is(back[i], 0), `value ${i} decodes to +0`);
    assert.equal(back[129], -2); // the absmax value itself is exact (level -1)
    // 0.5 / 2 = 0.25: NF4's nearest level is 0.2461 (code 10); FP4 has 0.25 exactly (code 0b111).
    assert.equal(back[128], quantType === 'nf4' ? Math.fround(NF4_LEVELS[10] * 2) : 0.5);
    assert.equal(q.codes[128], quantType === 'nf4' ? 10 : 0b111);
  }
});

test('8-bit dynamic coding picks the nearest map entry', () => {
  const rng = new Rng(11);
  for (let k = 0; k < 20000; k++) {
    // Spread over the map's decades: |x| from 1e-7 to 1.
    const x = Math.fround((rng.next() < 0.5 ? -1 : 1) * 10 ** (-7 * rng.next()));
    const code = encodeDynamic(DYNAMIC_MAP, x);
    let best = Infinity;
    for (const v of DYNAMIC_MAP) best = Math.min(best, Math.abs(v - x));
    assert.equal(Math.abs(DYNAMIC_MAP[code] - x), best, `x=${x}: code ${code} (${DYNAMIC_MAP[code]})`);
  }
  // The ends and zero.
  assert.equal(encodeDynamic(DYNAMIC_MAP, 1), 255);
  assert.equal(encodeDynamic(DYNAMIC_MAP, -1), 0);
  assert.equal(encodeDynamic(DYNAMIC_MAP, 0), 127);
});

test('8-bit blockwise round trip: error within half a map gap times absmax', () => {
  const x = standardNormal(1000, 13); // 3 full blocks of 256 and a partial one
  const q = quantizeBlockwise8bit(x, { blockSize: 256 });
  assert.equal(q.absmax.length, 4);
  const back = dequantizeBlockwise8bit(q, { blockSize: 256 });
  let maxGap = 0;
  for (let i = 1; i < 256; i++) maxGap = Math.max(maxGap, DYNAMIC_MAP[i] - DYNAMIC_MAP[i - 1]);
  for (let i = 0; i < x.length; i++) {
    assert.ok(Math.abs(back[i] - x[i]) <= (maxGap / 2) * q.absmax[i >> 8] * 1.0001, `value ${i}: ${x[i]} -> ${back[i]}`);
  }
});

test('double quantization of absmax: offset is the mean, decoded within half a map gap', () => {
  const w = standardNormal(64 * 1000, 17);
  const { absmax } = quantize4bit(w, { quantType: 'nf4', blockSize: 64 });
  const dq = doubleQuantizeAbsmax(absmax);
  assert.equal(dq.nestedBlockSize, 256);
  assert.equal(dq.codes.length, 1000);
  assert.equal(dq.absmax2.length, 4);
  const mean = absmax.reduce((s, a) => s + a, 0) / absmax.length;
  assert.ok(Math.abs(dq.offset - mean) < 1e-6);
  const back = dequantizeAbsmaxReference(dq);
  let maxGap = 0;
  for (let i = 1; i < 256; i++) maxGap = Math.max(maxGap, DYNAMIC_MAP[i] - DYNAMIC_MAP[i - 1]);
  let worst = 0;
  for (let b = 0; b < absmax.length; b++) {
    const err = Math.abs(back[b] - absmax[b]);
    worst = Math.max(worst, err / absmax[b]);
    assert.ok(err <= (maxGap / 2) * dq.absmax2[b >> 8] * 1.0001 + 1e-6, `block ${b}: ${absmax[b]} -> ${back[b]}`);
  }
  console.log(`# double-quantized absmax: largest relative error ${worst.toExponential(2)}`);
  assert.ok(worst < 0.01);
});

test('pack4bit/pack8bit round trip; the int32 words hold bitsandbytes byte layout', () => {
  const rng = new Rng(19);
  const codes4 = Uint8Array.from({ length: 8 * 5 + 3 }, () => rng.nextUint32() & 15);
  const packed4 = pack4bit(codes4);
  assert.equal(packed4.length, 6);
  assert.deepEqual(unpack4bit(packed4, codes4.length), codes4);
  const codes8 = Uint8Array.from({ length: 4 * 3 + 1 }, () => rng.nextUint32() & 255);
  const packed8 = pack8bit(codes8);
  assert.equal(packed8.length, 4);
  assert.deepEqual(unpack8bit(packed8, codes8.length), codes8);
  if (endianness() === 'LE') {
    const bytes4 = new Uint8Array(packed4.buffer);
    for (let k = 0; k < codes4.length >> 1; k++) assert.equal(bytes4[k], (codes4[2 * k] << 4) | codes4[2 * k + 1], `byte ${k}`);
    assert.deepEqual(new Uint8Array(packed8.buffer).subarray(0, codes8.length), codes8);
  }
  assert.throws(() => pack4bit(Uint8Array.of(16)), /out of range/);
});

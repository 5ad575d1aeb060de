// The code tables against bitsandbytes' published values and against their definitions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DYNAMIC_MAP, FP4_LEVELS, FP4_MAGNITUDE_CODES, FP4_MAGNITUDE_THRESHOLDS, NF4_LEVELS, NF4_THRESHOLDS } from '../../server/engine/quant/codebooks';
import { normalQuantile } from './normalQuantile';

const f32 = Math.fround;

/** One unit in the last place of a float32 of magnitude |x|. */
function ulp32(x: number): number {
  const a = Math.abs(x);
  return a === 0 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(a)) - 23);
}

// bitsandbytes functional.py get_4bit_type('nf4') (and csrc dDequantizeNF4).
const BNB_NF4 = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
  0.7229568362236023, 1.0,
];
// The pivots of csrc dQuantizeNF4's comparison tree, in increasing order.
const BNB_NF4_TREE = [
  -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
  -0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
  0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
  0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
];

test('NF4 levels equal bitsandbytes table to float32 precision', () => {
  assert.equal(NF4_LEVELS.length, 16);
  for (let i = 0; i < 16; i++) assert.equal(NF4_LEVELS[i], f32(BNB_NF4[i]), `level ${i}`);
});

test('NF4 levels are the normalized N(0,1) quantiles of create_normal_map (QLoRA)', () => {
  // float32 linspace as torch computes it: start + step * i up to the middle, end - step * (n - 1 - i) after.
  const linspace = (start: number, end: number, n: number): number[] => {
    const s = f32(start);
    const e = f32(end);
    const step = f32(f32(e - s) / (n - 1));
    return Array.from({ length: n }, (_, i) => (i < n >> 1 ? f32(s + f32(step * i)) : f32(e - f32(step * (n - 1 - i)))));
  };
  const offset = 0.9677083; // mean of 1 - 1/30 and 1 - 1/32
  const positive = linspace(offset, 0.5, 9).slice(0, -1).map(normalQuantile);
  const negative = linspace(offset, 0.5, 8).slice(0, -1).map((p) => -normalQuantile(p));
  const values = [...negative, 0, ...positive].map(f32).sort((a, b) => a - b);
  const top = values[values.length - 1];
  let maxDiff = 0;
  for (let i = 0; i < 16; i++) {
    const built = f32(values[i] / top);
    const diff = Math.abs(built - NF4_LEVELS[i]);
    maxDiff = Math.max(maxDiff, diff);
    assert.ok(diff <= ulp32(NF4_LEVELS[i]), `level ${i}: built ${built}, table ${NF4_LEVELS[i]}`);
  }
  console.log(`# NF4 rebuilt from normal quantiles: largest difference ${maxDiff} (tolerance 1 float32 ulp)`);
  // The asymmetric shape: 7 negative levels, an exact zero, 8 positive levels.
  assert.equal(NF4_LEVELS[7], 0);
  assert.equal(NF4_LEVELS.filter((v) => v < 0).length, 7);
});

test('NF4 thresholds are the pivots of bitsandbytes comparison tree', () => {
  assert.equal(NF4_THRESHOLDS.length, 15);
  for (let i = 0; i < 15; i++) assert.equal(NF4_THRESHOLDS[i], f32(BNB_NF4_TREE[i]), `threshold ${i}`);
});

test('FP4 levels equal dDequantizeFP4Tree constants, sign in bit 3', () => {
  // csrc dDequantizeFP4Tree: magnitude by the three low bits, times absmax, times the sign.
  const tree = [0, 5.208333333e-3, 0.66666667, 1, 0.33333333, 0.5, 0.16666667, 0.25];
  for (let code = 0; code < 16; code++) {
    const magnitude = f32(tree[code & 7]);
    assert.ok(Object.is(FP4_LEVELS[code], code & 8 ? -magnitude : magnitude), `code ${code}: ${FP4_LEVELS[code]}`);
  }
  assert.ok(Object.is(FP4_LEVELS[8], -0));
});

test('FP4 magnitude pivots sit between adjacent magnitudes, near their midpoints', () => {
  const sorted = Array.from(FP4_MAGNITUDE_CODES, (c) => FP4_LEVELS[c]);
  for (let i = 1; i < 8; i++) assert.ok(sorted[i] > sorted[i - 1], 'magnitude codes increase');
  for (let i = 0; i < 7; i++) {
    const mid = (sorted[i] + sorted[i + 1]) / 2;
    assert.ok(Math.abs(FP4_MAGNITUDE_THRESHOLDS[i] - mid) < 1e-6, `pivot ${i}: ${FP4_MAGNITUDE_THRESHOLDS[i]} vs midpoint ${mid}`);
  }
});

test('dynamic 8-bit map: 256 sorted values, bitsandbytes entries within one float32 ulp', () => {
  assert.equal(DYNAMIC_MAP.length, 256);
  for (let i = 1; i < 256; i++) assert.ok(DYNAMIC_MAP[i] > DYNAMIC_MAP[i - 1], `strictly increasing at ${i}`);
  assert.equal(DYNAMIC_MAP[127], 0);
  assert.equal(DYNAMIC_MAP[255], 1);
  // Entries of create_dynamic_map() as torch produced them (index: value).
  const bnb: Array<[number, number]> = [
    [0, -0.992968738079071], [1, -0.9789062738418579], [63, -0.10703125596046448],
    [64, -0.09859374910593033], [96, -0.009718749672174454], [112, -0.0009437499684281647],
    [124, -7.749999895168003e-6], [126, -5.499999815583578e-7], [128, 5.499999815583578e-7],
    [129, 3.2499999633728294e-6], [191, 0.10703125596046448], [218, 0.4867187738418579],
    [254, 0.992968738079071],
  ];
  for (const [i, v] of bnb) assert.ok(Math.abs(DYNAMIC_MAP[i] - v) <= ulp32(v), `entry ${i}: ${DYNAMIC_MAP[i]} vs ${v}`);
  // Seven decimal bands: 2^i values of band i lie in [0.1, 1) * 10^(i-6).
  const positives = Array.from(DYNAMIC_MAP.subarray(128, 255));
  let start = 0;
  for (let band = 0; band < 7; band++) {
    const values = positives.slice(start, start + 2 ** band);
    start += 2 ** band;
    for (const v of values) assert.ok(v > 0.1 * 10 ** (band - 6) && v < 10 ** (band - 6), `band ${band}: ${v}`);
  }
});

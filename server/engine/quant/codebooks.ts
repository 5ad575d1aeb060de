// Code tables of bitsandbytes' 4-bit and 8-bit blockwise quantization (bitsandbytes
// functional.py: get_4bit_type, create_normal_map, create_dynamic_map; csrc/kernels.cu:
// dQuantizeNF4, dQuantizeFP4, dDequantizeFP4Tree). Every table is float32, indexed by code.

export type { QuantType } from './spec';
import type { QuantType } from './spec';

/**
 * NF4 (QLoRA, arXiv:2305.14314): the 16 levels are quantiles of N(0, 1), normalized to
 * [-1, 1], with an exact zero. bitsandbytes' create_normal_map(offset = 0.9677083) takes
 * 8 positive quantiles at probabilities linspace(offset, 0.5, 9)[:-1] (float32), 7 negative
 * ones at linspace(offset, 0.5, 8)[:-1], adds 0, sorts, and divides by the largest; offset
 * is the mean of 1 - 1/(2*15) and 1 - 1/(2*16), the two ends of the asymmetric 15/16 grid.
 * The values below are that construction's float32 output, as bitsandbytes hard-codes them
 * (test/quant/codebooks.test.ts rebuilds them from the normal quantile function).
 * Codes are ordered by value, so code 7 is the exact zero.
 */
export const NF4_LEVELS = Float32Array.of(
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
  -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
);

/**
 * Decision thresholds of bitsandbytes' NF4 comparison tree: the float32 rounding of the
 * midpoints of adjacent levels. A scaled value x gets code k = number of thresholds with
 * x > threshold, so a value exactly on a threshold takes the lower code, as in the tree.
 */
export const NF4_THRESHOLDS = Float32Array.from({ length: 15 }, (_, i) => (NF4_LEVELS[i] + NF4_LEVELS[i + 1]) / 2);

/**
 * FP4 (E2M1, exponent bias 3, one subnormal 0.0625): bitsandbytes' get_4bit_type('fp4')
 * lists the magnitudes by the three low bits as [0, 0.0625, 8, 12, 4, 6, 2, 3] and divides
 * by their maximum, 12; bit 3 is the sign (code 8 is -0). Each entry is the float32 of
 * magnitude / 12, the constants of dDequantizeFP4Tree.
 */
export const FP4_LEVELS = Float32Array.from(
  [0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3],
  (v) => v / 12,
);

/**
 * dQuantizeFP4 takes the sign first, then walks a tree over |x| with these pivots. They are
 * bitsandbytes' literals (float32), close to but not all exactly the midpoints of adjacent
 * magnitudes (0.583333 for 0.5833333...), so they are kept as written there.
 */
export const FP4_MAGNITUDE_THRESHOLDS = Float32Array.of(
  0.00260417, 0.0859375, 0.20833333, 0.29166667, 0.4166667, 0.583333, 0.8333333,
);
/** The three low code bits of the magnitudes in increasing order (0, 1/192, 1/6, 1/4, 1/3, 1/2, 2/3, 1). */
export const FP4_MAGNITUDE_CODES = Uint8Array.of(0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011);

/** Each 4-bit type's 16 levels: a Record over the spec's types, so a new type without levels does not compile. */
const LEVELS: Record<QuantType, Float32Array> = { nf4: NF4_LEVELS, fp4: FP4_LEVELS };

export function levelsOf(quantType: QuantType): Float32Array {
  const levels = LEVELS[quantType];
  if (!levels) throw new Error(`unknown 4-bit quant type '${String(quantType)}' (expected ${Object.keys(LEVELS).join(' or ')})`);
  return levels;
}

/**
 * bitsandbytes' signed dynamic 8-bit map, create_dynamic_map(signed=True,
 * max_exponent_bits=7, total_bits=8), used to store the absmax values under double
 * quantization. For exponent band i = 0..6 it takes the 2^i midpoints of
 * linspace(0.1, 1, 2^i + 1), scales them by 10^(i - 6), adds their negatives, then 0 and
 * 1.0, and sorts: 256 values in [-0.99296875, 1], dense near zero.
 *
 * bitsandbytes evaluates this with float32 torch.linspace, whose last-bit rounding depends
 * on the torch build (which is why it stores the map beside every quantized tensor as
 * nested_quant_map). Here each entry is the float32 nearest to the exact value
 * (2d + 18k + 9) / (20d) * 10^(i-6), d = 2^i: the same table up to one float32 ulp on some
 * entries, and identical on every machine.
 */
function createDynamicMap(): Float32Array {
  const values: number[] = [0, 1];
  for (let band = 0; band < 7; band++) {
    const d = 2 ** band;
    for (let k = 0; k < d; k++) {
      // One correctly rounded division: the denominator is an exact integer (at most 1.28e9).
      const v = (2 * d + 18 * k + 9) / (20 * d * 10 ** (6 - band));
      values.push(v, -v);
    }
  }
  return Float32Array.from(values.sort((a, b) => a - b));
}
export const DYNAMIC_MAP: Float32Array = createDynamicMap();

/** The names a QuantState uses for the 8-bit code table of its absmax values. */
export type NestedQuantMap = 'dynamic';
export function nestedMapOf(name: NestedQuantMap): Float32Array {
  if (name === 'dynamic') return DYNAMIC_MAP;
  throw new Error(`unknown nested quant map '${String(name)}'`);
}

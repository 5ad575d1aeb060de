// Plain reference implementations of bitsandbytes' blockwise quantization on host arrays
// (bitsandbytes functional.py quantize_4bit / dequantize_4bit / quantize_blockwise /
// dequantize_blockwise; csrc/kernels.cu kQuantizeBlockwise, dQuantize). Every fast path
// (kernels.ts) is tested bit for bit against these.
//
// Arithmetic follows the CUDA kernels in float32: each block's scale is the float32
// reciprocal of its absmax, a value is quantized as fl(w * scale), and dequantized as
// fl(level * absmax). A block whose absmax is 0 (all zeros) is scaled by 0 instead of by
// 1/0, so its values get the code of the level 0 (bitsandbytes would compute 0 * inf = NaN
// and fall through its comparison tree to an arbitrary code); either way it decodes to 0.
import * as codebooks from './codebooks';
import { DYNAMIC_MAP, levelsOf } from './codebooks';
import type { QuantType } from './codebooks';

// Module-local bindings for the tables the per-value encoders read: where this file runs
// as CommonJS (tsx for the tests, the benchmarks and real-shape runs), an imported binding
// is a getter call on every read, which was 5.5 s of SmolLM2-135M's 12-17 s load.
const { FP4_MAGNITUDE_CODES, FP4_MAGNITUDE_THRESHOLDS, NF4_THRESHOLDS } = codebooks;

export interface Quantized4bit {
  /** One 4-bit code (0..15) per value, in the flattened row-major order of the weight. */
  codes: Uint8Array;
  /** The largest |w| of each block of blockSize values; the last block may be partial. */
  absmax: Float32Array;
}

export interface Quantized8bit {
  /** One 8-bit code (an index into the code table) per value. */
  codes: Uint8Array;
  absmax: Float32Array;
}

export function numBlocksOf(n: number, blockSize: number): number {
  return Math.ceil(n / blockSize);
}

function checkBlockSize(blockSize: number): void {
  if (!Number.isInteger(blockSize) || blockSize <= 0) throw new Error(`blockSize must be a positive integer, got ${blockSize}`);
}

function blockAbsmax(x: Float32Array, start: number, end: number): number {
  let m = 0;
  for (let i = start; i < end; i++) {
    const a = Math.abs(x[i]);
    if (a > m) m = a;
  }
  return m;
}

/** NF4 code of a scaled value: how many decision thresholds it exceeds (ties go down). */
export function encodeNF4(x: number): number {
  let lo = 0;
  let hi = 15;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x > NF4_THRESHOLDS[mid]) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** FP4 code of a scaled value: sign bit first, then the magnitude's rank among the pivots. */
export function encodeFP4(x: number): number {
  const sign = x < 0 ? 0b1000 : 0;
  const a = Math.abs(x);
  let rank = 0;
  while (rank < 7 && a > FP4_MAGNITUDE_THRESHOLDS[rank]) rank++;
  return FP4_MAGNITUDE_CODES[rank] | sign;
}

/** Each 4-bit type's encoder: a Record over the spec's types, so a new type without one does not compile. */
const ENCODERS: Record<QuantType, (x: number) => number> = { nf4: encodeNF4, fp4: encodeFP4 };

/** The encoder of a 4-bit type (scaled value in [-1, 1] -> code 0..15). */
export function encoderOf(quantType: QuantType): (x: number) => number {
  const encode = ENCODERS[quantType];
  if (!encode) throw new Error(`unknown 4-bit quant type '${String(quantType)}' (expected ${Object.keys(ENCODERS).join(' or ')})`);
  return encode;
}

/** Quantizes w (a weight flattened row-major) to 4-bit codes with one absmax per block. */
export function quantize4bit(w: Float32Array, opts: { quantType: QuantType; blockSize: number }): Quantized4bit {
  const { quantType, blockSize } = opts;
  if (!isBlockSize(blockSize)) throw new Error(`blockSize must be ${BLOCK_SIZE_RULE}, got ${blockSize}`);
  const encode = encoderOf(quantType); // rejects an unknown quant type before any work
  const n = w.length;
  const codes = new Uint8Array(n);
  const absmax = new Float32Array(numBlocksOf(n, blockSize));
  for (let b = 0; b < absmax.length; b++) {
    const start = b * blockSize;
    const end = Math.min(n, start + blockSize);
    const m = blockAbsmax(w, start, end);
    absmax[b] = m;
    const scale = m > 0 ? Math.fround(1 / m) : 0;
    for (let i = start; i < end; i++) codes[i] = encode(Math.fround(w[i] * scale));
  }
  return { codes, absmax };
}

/** w[i] = level[codes[i]] * absmax[block of i], rounded to float32 (the product of two float32 is exact in a double). */
export function dequantize4bitReference(q: Quantized4bit, opts: { quantType: QuantType; blockSize: number }): Float32Array {
  const levels = levelsOf(opts.quantType);
  const { codes, absmax } = q;
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = levels[codes[i]] * absmax[Math.floor(i / opts.blockSize)];
  return out;
}

/**
 * Index of the code-table entry nearest to x, found the way bitsandbytes' dQuantize does:
 * a 7-step bisection from the middle of the 256 sorted entries, then a comparison with the
 * float32 midpoint to the neighbour on x's side (so exact ties keep the bisection's pivot).
 */
export function encodeDynamic(code: Float32Array, x: number): number {
  let pivot = 127;
  let upperPivot = 255;
  let lowerPivot = 0;
  let lower = -1;
  let upper = 1;
  let val = code[pivot];
  for (let step = 64; step > 0; step >>= 1) {
    if (x > val) {
      lowerPivot = pivot;
      lower = val;
      pivot += step;
    } else {
      upperPivot = pivot;
      upper = val;
      pivot -= step;
    }
    val = code[pivot];
  }
  // The bounds only stand in for the table's ends when the bisection never left them.
  if (upperPivot === 255) upper = code[255];
  if (lowerPivot === 0) lower = code[0];
  if (x > val) return x > Math.fround(upper + val) * 0.5 ? upperPivot : pivot;
  return x < Math.fround(lower + val) * 0.5 ? lowerPivot : pivot;
}

/** bitsandbytes quantize_blockwise: 8-bit codes into `code` (the dynamic map by default), one absmax per block. */
export function quantizeBlockwise8bit(x: Float32Array, opts: { blockSize: number; code?: Float32Array }): Quantized8bit {
  const { blockSize } = opts;
  const code = opts.code ?? DYNAMIC_MAP;
  checkBlockSize(blockSize);
  const n = x.length;
  const codes = new Uint8Array(n);
  const absmax = new Float32Array(numBlocksOf(n, blockSize));
  for (let b = 0; b < absmax.length; b++) {
    const start = b * blockSize;
    const end = Math.min(n, start + blockSize);
    const m = blockAbsmax(x, start, end);
    absmax[b] = m;
    const scale = m > 0 ? Math.fround(1 / m) : 0;
    for (let i = start; i < end; i++) codes[i] = encodeDynamic(code, Math.fround(x[i] * scale));
  }
  return { codes, absmax };
}

export function dequantizeBlockwise8bit(q: Quantized8bit, opts: { blockSize: number; code?: Float32Array }): Float32Array {
  const code = opts.code ?? DYNAMIC_MAP;
  const out = new Float32Array(q.codes.length);
  for (let i = 0; i < out.length; i++) out[i] = code[q.codes[i]] * q.absmax[Math.floor(i / opts.blockSize)];
  return out;
}

/** The absmax values of a 4-bit weight under double quantization (bitsandbytes compress_statistics). */
export interface DoubleQuantAbsmax {
  /** 8-bit dynamic-map codes of absmax - offset, one per 4-bit block. */
  codes: Uint8Array;
  /** One float32 absmax per nestedBlockSize codes. */
  absmax2: Float32Array;
  /** The mean of the absmax values, subtracted before and added back after. */
  offset: number;
  nestedBlockSize: number;
}

/** bitsandbytes' double quantization: block size 256 for the absmax values, as in quantize_4bit. */
export { NESTED_BLOCK_SIZE } from './spec';
import { BLOCK_SIZE_RULE, isBlockSize, NESTED_BLOCK_SIZE } from './spec';

/**
 * offset = mean(absmax); the centred values go through quantizeBlockwise8bit. The mean is
 * summed in double and rounded once to float32 (torch sums float32 in float32, in an order
 * of its own, so the offset may differ from bitsandbytes' in its last bit).
 */
export function doubleQuantizeAbsmax(absmax: Float32Array, nestedBlockSize = NESTED_BLOCK_SIZE): DoubleQuantAbsmax {
  let sum = 0;
  for (let i = 0; i < absmax.length; i++) sum += absmax[i];
  const offset = absmax.length > 0 ? Math.fround(sum / absmax.length) : 0;
  const centred = new Float32Array(absmax.length);
  for (let i = 0; i < absmax.length; i++) centred[i] = absmax[i] - offset;
  const q = quantizeBlockwise8bit(centred, { blockSize: nestedBlockSize, code: DYNAMIC_MAP });
  return { codes: q.codes, absmax2: q.absmax, offset, nestedBlockSize };
}

/** absmax[b] = fl(fl(code[codes[b]] * absmax2[b / 256]) + offset), as dequantize_4bit does before the 4-bit decode. */
export function dequantizeAbsmaxReference(dq: DoubleQuantAbsmax): Float32Array {
  const centred = dequantizeBlockwise8bit({ codes: dq.codes, absmax: dq.absmax2 }, { blockSize: dq.nestedBlockSize, code: DYNAMIC_MAP });
  const out = new Float32Array(centred.length);
  for (let i = 0; i < out.length; i++) out[i] = centred[i] + dq.offset;
  return out;
}

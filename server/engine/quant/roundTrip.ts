// The weights a QLoRA adapter was trained against: the base weight quantized to 4 bits
// and dequantized again, exactly as QuantizedWeight does it (quantizeWeight, then
// dequantizeWeightReference / the Dequantize4bit kernel; bitsandbytes quantize_4bit with
// compress_statistics), computed in place on one float32 buffer. Merging a large projection
// then needs no codes, no packed words and no second float copy, and the block statistics
// live in buffers the caller reuses from tensor to tensor, so a merge allocates nothing per
// tensor. test/merge/units.test.ts checks it bit for bit against
// dequantizeWeightReference(quantizeWeight(w)).
//
// W is (out, in) flattened row-major; blocks run over that flat order, the last may be partial.
import { DYNAMIC_MAP, levelsOf } from './codebooks';
import { encodeDynamic, encoderOf, numBlocksOf } from './blockwise';
import { BLOCK_SIZE_RULE, isBlockSize, NESTED_BLOCK_SIZE, type QuantType } from './spec';

export interface RoundTripOptions {
  quantType: QuantType;
  blockSize: number;
  doubleQuant: boolean;
}

/** Scratch for the block statistics: reuse one across tensors (it grows when a tensor needs more). */
export class RoundTripBuffers {
  absmax = new Float32Array(0);
  decoded = new Float32Array(0);

  ensure(numBlocks: number): void {
    if (this.absmax.length >= numBlocks) return;
    this.absmax = new Float32Array(numBlocks);
    this.decoded = new Float32Array(numBlocks);
  }
}

/** w <- dequantize(quantize(w)): the 4-bit base a QLoRA adapter saw, in place. */
export function roundTrip4bitInPlace(w: Float32Array, opts: RoundTripOptions, buffers = new RoundTripBuffers()): void {
  const { quantType, blockSize, doubleQuant } = opts;
  if (!isBlockSize(blockSize)) throw new Error(`blockSize must be ${BLOCK_SIZE_RULE}, got ${blockSize}`);
  const n = w.length;
  const numBlocks = numBlocksOf(n, blockSize);
  buffers.ensure(numBlocks);
  const absmax = buffers.absmax.subarray(0, numBlocks); // (numBlocks,)
  for (let b = 0; b < numBlocks; b++) {
    let m = 0;
    const end = Math.min(n, (b + 1) * blockSize);
    for (let i = b * blockSize; i < end; i++) {
      const a = Math.abs(w[i]);
      if (a > m) m = a;
    }
    absmax[b] = m;
  }
  // Codes come from the exact absmax; decoding multiplies by the stored one, which double
  // quantization has itself rounded through 8 bits.
  const decoded = doubleQuant ? doubleQuantRoundTrip(absmax, buffers.decoded.subarray(0, numBlocks)) : absmax;
  const levels = levelsOf(quantType);
  const encode = encoderOf(quantType);
  for (let b = 0; b < numBlocks; b++) {
    const scale = absmax[b] > 0 ? Math.fround(1 / absmax[b]) : 0;
    const d = decoded[b];
    const end = Math.min(n, (b + 1) * blockSize);
    for (let i = b * blockSize; i < end; i++) w[i] = levels[encode(Math.fround(w[i] * scale))] * d;
  }
}

/**
 * The absmax values as dequantize_4bit sees them after double quantization: centred on their
 * mean (summed in double, rounded once), coded to 8 bits of the dynamic map in blocks of 256,
 * decoded and shifted back; every step rounded to float32 as blockwise.ts's
 * doubleQuantizeAbsmax + dequantizeAbsmaxReference do.
 */
function doubleQuantRoundTrip(absmax: Float32Array, out: Float32Array): Float32Array {
  let sum = 0;
  for (let i = 0; i < absmax.length; i++) sum += absmax[i];
  const offset = absmax.length > 0 ? Math.fround(sum / absmax.length) : 0;
  for (let i = 0; i < absmax.length; i++) out[i] = absmax[i] - offset; // centred, in float32
  for (let start = 0; start < out.length; start += NESTED_BLOCK_SIZE) {
    const end = Math.min(out.length, start + NESTED_BLOCK_SIZE);
    let m = 0;
    for (let i = start; i < end; i++) m = Math.max(m, Math.abs(out[i]));
    const scale = m > 0 ? Math.fround(1 / m) : 0;
    for (let i = start; i < end; i++) {
      const centred = Math.fround(DYNAMIC_MAP[encodeDynamic(DYNAMIC_MAP, Math.fround(out[i] * scale))] * m);
      out[i] = centred + offset;
    }
  }
  return out;
}

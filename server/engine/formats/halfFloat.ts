// IEEE 754 binary16 (float16) and bfloat16 <-> float32, on arrays of raw bits.
// Narrowing rounds to nearest, ties to even — what PyTorch's `.to(torch.float16)` and
// `.to(torch.bfloat16)` do — so a checkpoint written here matches one written by PyTorch.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

let float16Table: Float32Array | undefined;

/** All 65,536 float16 values as float32: widening is then one lookup per element. */
function float16ToFloat32Table(): Float32Array {
  if (float16Table) return float16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) t[h] = sign * mant * 2 ** -24; // zero and subnormals
    else if (exp === 31) t[h] = mant ? NaN : sign * Infinity;
    else t[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  float16Table = t;
  return t;
}

export function float16BitsToFloat32(bits: Uint16Array): Float32Array {
  const table = float16ToFloat32Table();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return out;
}

export function bfloat16BitsToFloat32(bits: Uint16Array): Float32Array {
  // bfloat16 is the upper half of a float32: widening is exact.
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i] << 16;
  return out;
}

/** float16 bits of one float32 bit pattern, rounded to nearest even. */
export function float32BitsToFloat16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return mant ? sign | 0x7e00 : sign | 0x7c00; // NaN stays a (quiet) NaN
  if (exp >= 143) return sign | 0x7c00; // >= 2^16: beyond the largest float16 (65504) after rounding
  if (exp >= 113) {
    // A normal float16: drop 13 mantissa bits. A carry out of the mantissa correctly
    // bumps the exponent (and reaches infinity from 65520 upwards).
    const half = ((exp - 112) << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    return sign | (rest > 0x1000 || (rest === 0x1000 && half & 1) ? half + 1 : half);
  }
  if (exp < 102) return sign; // below 2^-25, half the smallest subnormal: rounds to zero
  // A float16 subnormal counts units of 2^-24: shift the full significand into them.
  const significand = mant | 0x800000;
  const shift = 126 - exp; // 14..24
  const half = significand >>> shift;
  const rest = significand & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  return sign | (rest > halfway || (rest === halfway && half & 1) ? half + 1 : half);
}

/** bfloat16 bits of one float32 bit pattern, rounded to nearest even. */
export function float32BitsToBfloat16Bits(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff; // keep NaN a NaN
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function float32ToFloat16Bits(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = float32BitsToFloat16Bits(bits[i]);
  return out;
}

export function float32ToBfloat16Bits(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = float32BitsToBfloat16Bits(bits[i]);
  return out;
}

/** The value a float32 takes after a round trip through float16 (for tests and tolerances). */
export function roundToFloat16(x: number): number {
  f32[0] = x;
  return float16ToFloat32Table()[float32BitsToFloat16Bits(u32[0])];
}

/** The value a float32 takes after a round trip through bfloat16. */
export function roundToBfloat16(x: number): number {
  f32[0] = x;
  u32[0] = float32BitsToBfloat16Bits(u32[0]) << 16;
  return f32[0];
}

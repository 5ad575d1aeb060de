// Packing of 4-bit and 8-bit codes into int32 words: TensorFlow.js has no 8-bit tensor type,
// so the resident codes live in int32 tensors.
//
// The layout is bitsandbytes' uint8 storage read as little-endian int32: byte k of a word
// holds two consecutive 4-bit codes, the first in the high nibble (quantize_4bit stores
// `code(x[2k]) << 4 | code(x[2k+1])`). So code j of a word (j = 0..7) sits at bit
// NIBBLE_SHIFTS[j], and a packed buffer viewed as bytes on a little-endian host is the
// byte stream bitsandbytes writes. 8-bit codes go four to a word, code j in byte j.

/** Bit offset of the j-th 4-bit code inside its int32 word. */
export const NIBBLE_SHIFTS: readonly number[] = [4, 0, 12, 8, 20, 16, 28, 24];

export function packedLength4bit(n: number): number {
  return Math.ceil(n / 8);
}

export function packedLength8bit(n: number): number {
  return Math.ceil(n / 4);
}

/** Eight codes (each 0..15) per int32; the last word is zero-padded. */
export function pack4bit(codes: Uint8Array): Int32Array {
  const packed = new Int32Array(packedLength4bit(codes.length));
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c > 15) throw new Error(`4-bit code out of range at ${i}: ${c}`);
    packed[i >> 3] |= c << NIBBLE_SHIFTS[i & 7];
  }
  return packed;
}

export function unpack4bit(packed: Int32Array, n: number): Uint8Array {
  if (packedLength4bit(n) > packed.length) throw new Error(`${packed.length} words cannot hold ${n} 4-bit codes`);
  const codes = new Uint8Array(n);
  for (let i = 0; i < n; i++) codes[i] = (packed[i >> 3] >>> NIBBLE_SHIFTS[i & 7]) & 15;
  return codes;
}

/** Four 8-bit codes per int32, code j in byte j (little-endian order); the last word is zero-padded. */
export function pack8bit(codes: Uint8Array): Int32Array {
  const packed = new Int32Array(packedLength8bit(codes.length));
  for (let i = 0; i < codes.length; i++) packed[i >> 2] |= codes[i] << ((i & 3) << 3);
  return packed;
}

export function unpack8bit(packed: Int32Array, n: number): Uint8Array {
  if (packedLength8bit(n) > packed.length) throw new Error(`${packed.length} words cannot hold ${n} 8-bit codes`);
  const codes = new Uint8Array(n);
  for (let i = 0; i < n; i++) codes[i] = (packed[i >> 2] >>> ((i & 3) << 3)) & 255;
  return codes;
}

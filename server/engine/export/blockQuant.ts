// Post-training quantization of one tensor into a GGML type, row by row, as ggml's reference
// quantizers do it (ggml-quants.c quantize_row_*_ref), and the decoding that llama.cpp
// applies, so that an export can report the error of what it wrote:
// - Q8_0: symmetric absmax int8 per block of 32: d = max|x| / 127, q = round(x / d).
// - Q4_0: symmetric 4-bit: d = (the value of largest magnitude) / -8,
//   q = min(15, trunc(x / d + 8.5)), decoded (q - 8) d; byte j holds q[j] low, q[j+16] high.
// - Q4_1: asymmetric 4-bit with a zero point: d = (max - min) / 15, m = min,
//   q = min(15, trunc((x - m) / d + 0.5)), decoded q d + m.
// Scales are stored as float16; codes are computed with the float32 scale, as ggml does.
import { float32BitsToBfloat16Bits, float32BitsToFloat16Bits, float16BitsToFloat32, bfloat16BitsToFloat32 } from '../formats/halfFloat';
import { GGML, tensorBytes, type ExportType } from './ggmlTypes';

const QK = 32;
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const bitsOf = (x: number) => { f32[0] = x; return u32[0]; };
const half = (x: number) => float32BitsToFloat16Bits(bitsOf(x));
const halfValue = (h: number) => float16BitsToFloat32(Uint16Array.of(h))[0];
/** C's roundf: halves away from zero (Math.round takes them up). */
const roundf = (v: number) => (v < 0 ? -Math.round(-v) : Math.round(v));

export interface QuantError {
  /** Root mean square of decoded - original. */
  rmse: number;
  /** Root mean square of the original: rmse / rms is the relative error. */
  rms: number;
  maxAbs: number;
}

/**
 * Encodes `x` (rows of `rowLength` values, row-major) as `type` into `out` (at least
 * tensorBytes(type, x.length) bytes) and returns the filled view and the error of the
 * decoded values against `x`.
 */
export function quantizeTensor(type: ExportType, x: Float32Array, rowLength: number, out?: Uint8Array): { bytes: Uint8Array; error: QuantError } {
  const size = tensorBytes(type, x.length);
  const bytes = out ? out.subarray(0, size) : new Uint8Array(size);
  if (out && out.length < size) throw new Error(`buffer of ${out.length} bytes cannot hold ${size}`);
  if (x.length % rowLength !== 0) throw new Error(`${x.length} values are not whole rows of ${rowLength}`);
  if (GGML[type].blockSize > 1 && rowLength % QK !== 0) throw new Error(`${type} needs rows of a multiple of ${QK} values, got ${rowLength}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let se = 0, sx = 0, maxAbs = 0;
  const account = (orig: number, dec: number) => {
    const e = dec - orig;
    se += e * e;
    sx += orig * orig;
    if (Math.abs(e) > maxAbs) maxAbs = Math.abs(e);
  };
  switch (type) {
    case 'f32':
      new Float32Array(bytes.buffer, bytes.byteOffset, x.length).set(x);
      for (let i = 0; i < x.length; i++) sx += x[i] * x[i];
      break;
    case 'f16':
    case 'bf16': {
      const narrow = type === 'f16' ? float32BitsToFloat16Bits : float32BitsToBfloat16Bits;
      const widen = type === 'f16' ? float16BitsToFloat32 : bfloat16BitsToFloat32;
      const src = new Uint32Array(x.buffer, x.byteOffset, x.length);
      const CH = 1 << 16;
      const bits = new Uint16Array(Math.min(CH, x.length));
      for (let s = 0; s < x.length; s += CH) {
        const n = Math.min(CH, x.length - s);
        for (let i = 0; i < n; i++) {
          bits[i] = narrow(src[s + i]);
          view.setUint16(2 * (s + i), bits[i], true);
        }
        const dec = widen(bits.subarray(0, n));
        for (let i = 0; i < n; i++) account(x[s + i], dec[i]);
      }
      break;
    }
    case 'q8_0':
      for (let b = 0, at = 0; b < x.length; b += QK, at += 34) {
        let amax = 0;
        for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[b + j]));
        const d = Math.fround(amax / 127);
        const id = d ? Math.fround(1 / d) : 0;
        const dh = half(d);
        const dd = halfValue(dh);
        view.setUint16(at, dh, true);
        for (let j = 0; j < QK; j++) {
          const q = roundf(Math.fround(x[b + j] * id));
          view.setInt8(at + 2 + j, q);
          account(x[b + j], q * dd);
        }
      }
      break;
    case 'q4_0':
      for (let b = 0, at = 0; b < x.length; b += QK, at += 18) {
        let amax = 0, max = 0;
        for (let j = 0; j < QK; j++) {
          const v = x[b + j];
          if (Math.abs(v) > amax) { amax = Math.abs(v); max = v; }
        }
        const d = Math.fround(max / -8);
        const id = d ? Math.fround(1 / d) : 0;
        const dh = half(d);
        const dd = halfValue(dh);
        view.setUint16(at, dh, true);
        const code = (v: number) => Math.min(15, Math.trunc(Math.fround(Math.fround(v * id) + 8.5)));
        for (let j = 0; j < QK / 2; j++) {
          const lo = code(x[b + j]), hi = code(x[b + j + QK / 2]);
          bytes[at + 2 + j] = lo | (hi << 4);
          account(x[b + j], (lo - 8) * dd);
          account(x[b + j + QK / 2], (hi - 8) * dd);
        }
      }
      break;
    case 'q4_1':
      for (let b = 0, at = 0; b < x.length; b += QK, at += 20) {
        let min = Infinity, max = -Infinity;
        for (let j = 0; j < QK; j++) { min = Math.min(min, x[b + j]); max = Math.max(max, x[b + j]); }
        const d = Math.fround((max - min) / 15);
        const id = d ? Math.fround(1 / d) : 0;
        const dh = half(d), mh = half(min);
        const dd = halfValue(dh), md = halfValue(mh);
        view.setUint16(at, dh, true);
        view.setUint16(at + 2, mh, true);
        const code = (v: number) => Math.min(15, Math.trunc(Math.fround(Math.fround(Math.fround(v - min) * id) + 0.5)));
        for (let j = 0; j < QK / 2; j++) {
          const lo = code(x[b + j]), hi = code(x[b + j + QK / 2]);
          bytes[at + 4 + j] = lo | (hi << 4);
          account(x[b + j], lo * dd + md);
          account(x[b + j + QK / 2], hi * dd + md);
        }
      }
      break;
  }
  const n = Math.max(1, x.length);
  return { bytes, error: { rmse: Math.sqrt(se / n), rms: Math.sqrt(sx / n), maxAbs } };
}

/** Decodes GGML `type` bytes back to float32 (what llama.cpp computes with): the reference for tests and reports. */
export function dequantizeTensor(type: ExportType, bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = (at: number) => halfValue(view.getUint16(at, true));
  switch (type) {
    case 'f32': for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true); break;
    case 'f16': for (let i = 0; i < count; i++) out[i] = h(2 * i); break;
    case 'bf16': for (let i = 0; i < count; i++) out[i] = bfloat16BitsToFloat32(Uint16Array.of(view.getUint16(2 * i, true)))[0]; break;
    case 'q8_0':
      for (let b = 0, at = 0; b < count; b += QK, at += 34) { const d = h(at); for (let j = 0; j < QK; j++) out[b + j] = view.getInt8(at + 2 + j) * d; }
      break;
    case 'q4_0':
      for (let b = 0, at = 0; b < count; b += QK, at += 18) {
        const d = h(at);
        for (let j = 0; j < QK / 2; j++) { const q = bytes[at + 2 + j]; out[b + j] = ((q & 15) - 8) * d; out[b + j + QK / 2] = ((q >> 4) - 8) * d; }
      }
      break;
    case 'q4_1':
      for (let b = 0, at = 0; b < count; b += QK, at += 20) {
        const d = h(at), m = h(at + 2);
        for (let j = 0; j < QK / 2; j++) { const q = bytes[at + 4 + j]; out[b + j] = (q & 15) * d + m; out[b + j + QK / 2] = (q >> 4) * d + m; }
      }
      break;
  }
  return out;
}

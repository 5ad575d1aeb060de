// A frozen (rows, cols) table - the token embedding, or an untied output head - kept once,
// compactly, on the host, outside the compute heap: bf16 bits (2 bytes a value) by default,
// fp32 only when full precision was asked for and the values are not bf16 already.
// What the model multiplies by is dequantized on demand, a slice of rows at a time: the
// rows of a batch's token ids for the input, one vocabulary chunk of the head at a time
// for the loss (chunkedLoss.ts). No fp32 copy and no transposed copy is ever stored, and
// a tied head reads the embedding's own table.
//
// Why on the host: with the wasm backend the compute heap is capped at 4 GiB, and a
// Llama-3.2-1B embedding is 1.05 GB in fp32 - twice that when the head was a second copy.
import { tf } from '../tf';

export type TableDtype = 'bf16' | 'fp32';

/** bf16 bits of an fp32 value, rounded to nearest even (NaN stays a quiet NaN). */
function toBf16Bits(u: number): number {
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x007fffff) !== 0) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export class FrozenTable {
  private readonly bits?: Uint16Array; // bf16, row-major (rows, cols)
  private readonly f32?: Float32Array; // fp32, row-major (rows, cols)

  private constructor(readonly rows: number, readonly cols: number, readonly dtype: TableDtype, data: Uint16Array | Float32Array) {
    if (data instanceof Uint16Array) this.bits = data;
    else this.f32 = data;
  }

  /**
   * A table from fp32 values (row-major). bf16 unless `fullPrecision` is asked for; values
   * that are exactly bf16 already (a checkpoint stored in bf16) are kept as bf16 either way,
   * as that loses nothing.
   */
  static fromFloat32(data: Float32Array, rows: number, cols: number, opts: { fullPrecision: boolean }): FrozenTable {
    if (data.length !== rows * cols) throw new Error(`FrozenTable: ${data.length} values for shape [${rows}, ${cols}]`);
    const u32 = new Uint32Array(data.buffer, data.byteOffset, data.length);
    let exact = true;
    for (let i = 0; i < u32.length && exact; i++) if ((u32[i] & 0xffff) !== 0) exact = false;
    if (opts.fullPrecision && !exact) return new FrozenTable(rows, cols, 'fp32', Float32Array.from(data));
    const bits = new Uint16Array(data.length);
    for (let i = 0; i < u32.length; i++) bits[i] = toBf16Bits(u32[i]);
    return new FrozenTable(rows, cols, 'bf16', bits);
  }

  /** Bytes this table holds (on the host). */
  residentBytes(): number {
    return this.bits ? this.bits.byteLength : this.f32!.byteLength;
  }

  /** Rows [start, end) as fp32, (end - start, cols), in the stored (row-major) layout. */
  rowsToHost(start: number, end: number): Float32Array {
    if (!(start >= 0 && end <= this.rows && start <= end)) throw new Error(`FrozenTable: rows [${start}, ${end}) outside [0, ${this.rows})`);
    const n = (end - start) * this.cols;
    const out = new Float32Array(n);
    if (this.f32) {
      out.set(this.f32.subarray(start * this.cols, end * this.cols));
      return out;
    }
    const u = new Uint32Array(out.buffer);
    const src = this.bits!.subarray(start * this.cols, end * this.cols);
    for (let i = 0; i < n; i++) u[i] = src[i] << 16;
    return out;
  }

  /** Rows [start, end) as a tensor (end - start, cols). The caller disposes it. */
  rows2d(start: number, end: number): tf.Tensor2D {
    return tf.tensor2d(this.rowsToHost(start, end), [end - start, this.cols]);
  }

  /** The rows of `ids`, in order, as a tensor (ids.length, cols): an embedding lookup. */
  gather(ids: ArrayLike<number>): tf.Tensor2D {
    const C = this.cols;
    const out = new Float32Array(ids.length * C);
    const u = new Uint32Array(out.buffer);
    for (let r = 0; r < ids.length; r++) {
      const id = ids[r];
      if (!(Number.isInteger(id) && id >= 0 && id < this.rows)) throw new Error(`token id ${id} is outside the vocabulary of ${this.rows}`);
      if (this.f32) {
        out.set(this.f32.subarray(id * C, (id + 1) * C), r * C);
      } else {
        const src = this.bits!;
        for (let i = 0, s = id * C, d = r * C; i < C; i++) u[d + i] = src[s + i] << 16;
      }
    }
    return tf.tensor2d(out, [ids.length, C]);
  }

  /** The whole table as fp32 (rows, cols): for export and tests, not the training path. */
  toFloat32(): Float32Array {
    return this.rowsToHost(0, this.rows);
  }
}

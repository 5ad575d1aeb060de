// A frozen (rows, cols) table - the token embedding, or an untied output head - kept once,
// compactly, on the host, outside the compute heap: 16-bit (2 bytes a value) whenever the
// checkpoint's values are 16-bit, as every bf16 or fp16 checkpoint's are, so nothing is
// lost; fp32 only for a checkpoint whose values 16 bits cannot hold exactly (an fp32
// export), unless rounding to bf16 is asked for. What the model multiplies by is
// dequantized on demand, a slice of rows at a time: the rows of a batch's token ids for the
// input, one vocabulary chunk of the head at a time for the loss (chunkedLoss.ts). No fp32
// copy and no transposed copy is ever stored, and a tied head reads the embedding's table.
//
// Why on the host: with the wasm backend the compute heap is capped at 4 GiB, and a
// Llama-3.2-1B embedding is 1.05 GB in fp32 - twice that when the head was a second copy.
import { tf } from '../tf';
import { float16BitsToFloat32, float32BitsToBfloat16Bits, float32BitsToFloat16Bits } from '../formats/halfFloat';
import type { WasmBackendLike } from '../kernels/backendLike';

export type TableDtype = 'bf16' | 'fp16' | 'fp32';

/**
 * A (rows, cols) float32 tensor whose values `fill` writes. On wasm they are written into
 * the tensor's own memory on the heap: a host array first was one more copy of every
 * value, and fresh host buffers a step (a head's vocabulary chunks, twice) were what set
 * off the collector (a scavenge a step, for external memory). `fill` must not allocate on
 * the heap (growing it detaches the view).
 */
function filledTensor(rows: number, cols: number, fill: (out: Float32Array) => void): tf.Tensor2D {
  if (tf.getBackend() === 'wasm' && rows * cols > 0) {
    const wasm = tf.backend() as unknown as WasmBackendLike;
    const info = wasm.makeOutput([rows, cols], 'float32');
    fill(wasm.typedArrayFromHeap(info) as Float32Array);
    return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor2D;
  }
  const out = new Float32Array(rows * cols);
  fill(out);
  return tf.tensor2d(out, [rows, cols]);
}

/** The same bytes as uint32 (one view a call, not one a row). */
const bitsOf = (out: Float32Array) => new Uint32Array(out.buffer, out.byteOffset, out.length);

let fp16Values: Float32Array | undefined;
/** All 65,536 float16 values as float32: widening is one lookup. */
function float16Table(): Float32Array {
  fp16Values ??= float16BitsToFloat32(Uint16Array.from({ length: 65536 }, (_, i) => i));
  return fp16Values;
}

export class FrozenTable {
  private readonly bits?: Uint16Array; // bf16 or fp16 bits, row-major (rows, cols)
  private readonly f32?: Float32Array; // fp32, row-major (rows, cols)
  private readonly fp16?: Float32Array; // the fp16 widening table, for dtype fp16

  private constructor(readonly rows: number, readonly cols: number, readonly dtype: TableDtype, data: Uint16Array | Float32Array) {
    if (data instanceof Uint16Array) this.bits = data;
    else this.f32 = data;
    if (dtype === 'fp16') this.fp16 = float16Table();
  }

  /**
   * A table from fp32 values (row-major), in the narrowest form that holds them exactly:
   * bf16, else fp16, else fp32. `round: 'bf16'` rounds to bf16 (nearest even) instead of
   * falling back to fp32.
   */
  static fromFloat32(data: Float32Array, rows: number, cols: number, opts: { round?: 'bf16' } = {}): FrozenTable {
    if (data.length !== rows * cols) throw new Error(`FrozenTable: ${data.length} values for shape [${rows}, ${cols}]`);
    const u32 = new Uint32Array(data.buffer, data.byteOffset, data.length);
    const n = u32.length;
    let exactBf16 = true;
    for (let i = 0; i < n && exactBf16; i++) if ((u32[i] & 0xffff) !== 0) exactBf16 = false;
    if (exactBf16 || opts.round === 'bf16') {
      const bits = new Uint16Array(n);
      for (let i = 0; i < n; i++) bits[i] = exactBf16 ? u32[i] >>> 16 : float32BitsToBfloat16Bits(u32[i]);
      return new FrozenTable(rows, cols, 'bf16', bits);
    }
    const table = float16Table();
    const bits = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      const h = float32BitsToFloat16Bits(u32[i]);
      if (table[h] !== data[i] && !(data[i] !== data[i] && table[h] !== table[h])) {
        return new FrozenTable(rows, cols, 'fp32', Float32Array.from(data));
      }
      bits[i] = h;
    }
    return new FrozenTable(rows, cols, 'fp16', bits);
  }

  /** Bytes this table holds (on the host). */
  residentBytes(): number {
    return this.bits ? this.bits.byteLength : this.f32!.byteLength;
  }

  /** Rows [start, end) as fp32, (end - start, cols), in the stored (row-major) layout. */
  rowsToHost(start: number, end: number): Float32Array {
    this.checkRows(start, end);
    const out = new Float32Array((end - start) * this.cols);
    this.rowsInto(out, bitsOf(out), 0, start, end);
    return out;
  }

  /** Rows [start, end) as a tensor (end - start, cols). The caller disposes it. */
  rows2d(start: number, end: number): tf.Tensor2D {
    this.checkRows(start, end);
    return filledTensor(end - start, this.cols, (out) => this.rowsInto(out, bitsOf(out), 0, start, end));
  }

  /** The rows of `ids`, in order, as a tensor (ids.length, cols): an embedding lookup. */
  gather(ids: ArrayLike<number>): tf.Tensor2D {
    for (let r = 0; r < ids.length; r++) {
      const id = ids[r];
      if (!(Number.isInteger(id) && id >= 0 && id < this.rows)) throw new Error(`token id ${id} is outside the vocabulary of ${this.rows}`);
    }
    return filledTensor(ids.length, this.cols, (out) => {
      const bits = bitsOf(out);
      for (let r = 0; r < ids.length; r++) this.rowsInto(out, bits, r * this.cols, ids[r], ids[r] + 1);
    });
  }

  private checkRows(start: number, end: number): void {
    if (!(start >= 0 && end <= this.rows && start <= end)) throw new Error(`FrozenTable: rows [${start}, ${end}) outside [0, ${this.rows})`);
  }

  /** Widens rows [start, end) into out from index `at` (their (end - start) * cols values); `bits` is out's bytes as uint32. */
  private rowsInto(out: Float32Array, bits: Uint32Array, at: number, start: number, end: number): void {
    const s = start * this.cols, n = (end - start) * this.cols;
    if (this.f32) {
      out.set(this.f32.subarray(s, s + n), at);
      return;
    }
    const src = this.bits!;
    if (this.fp16) {
      const t = this.fp16;
      for (let i = 0; i < n; i++) out[at + i] = t[src[s + i]];
      return;
    }
    // bf16 is the high half of the float32: written as bits.
    for (let i = 0; i < n; i++) bits[at + i] = src[s + i] << 16;
  }

  /** The whole table as fp32 (rows, cols): for export and tests, not the training path. */
  toFloat32(): Float32Array {
    return this.rowsToHost(0, this.rows);
  }
}

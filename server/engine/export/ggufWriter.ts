// A GGUF v3 file (ggml's docs/gguf.md) written one tensor at a time: magic "GGUF", version 3,
// tensor and key-value counts (u64), the typed key-values, one info per tensor (name, dims
// innermost first, ggml type, offset into the data section), padding to
// `general.alignment`, then each tensor's bytes at its offset. Every tensor's size is known
// from its type and shape, so the whole header goes out first and the data follows in plan
// order: the writer holds one tensor, never the model. The file is written beside its
// destination under a temporary name and renamed into place by finish().
import { closeSync, fsyncSync, openSync, renameSync, rmSync } from 'node:fs';
import { writeAll, tempPathBeside } from '../formats/binaryFile';
import { GGML, tensorBytes, type ExportType } from './ggmlTypes';

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** GGUF metadata value types (gguf_type). */
export const enum GgufValueType { UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12 }

export type GgufValue =
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'i32[]'; value: ArrayLike<number> }
  | { type: 'f32[]'; value: ArrayLike<number> };

export interface GgufTensorPlan {
  name: string;
  /** Row-major shape, outermost first (as safetensors and PyTorch write it); stored reversed. */
  shape: readonly number[];
  type: ExportType;
}

const utf8 = new TextEncoder();
const pad = (n: number) => (GGUF_ALIGNMENT - (n % GGUF_ALIGNMENT)) % GGUF_ALIGNMENT;
const count = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** A growing little-endian byte buffer for the header. */
class HeaderBytes {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u32(v: number) { this.room(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  i32(v: number) { this.room(4); this.view.setInt32(this.length, v, true); this.length += 4; }
  u64(v: number) { this.room(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  f32(v: number) { this.room(4); this.view.setFloat32(this.length, v, true); this.length += 4; }
  u8(v: number) { this.room(1); this.view.setUint8(this.length, v); this.length += 1; }
  string(s: string) {
    const b = utf8.encode(s);
    this.u64(b.length);
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  zeros(n: number) { this.room(n); this.buf.fill(0, this.length, this.length + n); this.length += n; }
  bytes(): Uint8Array { return this.buf.subarray(0, this.length); }
}

function writeValue(h: HeaderBytes, v: GgufValue): void {
  switch (v.type) {
    case 'u32': h.u32(GgufValueType.UINT32); h.u32(v.value); break;
    case 'i32': h.u32(GgufValueType.INT32); h.i32(v.value); break;
    case 'f32': h.u32(GgufValueType.FLOAT32); h.f32(v.value); break;
    case 'bool': h.u32(GgufValueType.BOOL); h.u8(v.value ? 1 : 0); break;
    case 'string': h.u32(GgufValueType.STRING); h.string(v.value); break;
    case 'string[]': h.u32(GgufValueType.ARRAY); h.u32(GgufValueType.STRING); h.u64(v.value.length); for (const s of v.value) h.string(s); break;
    case 'i32[]': h.u32(GgufValueType.ARRAY); h.u32(GgufValueType.INT32); h.u64(v.value.length); for (let i = 0; i < v.value.length; i++) h.i32(v.value[i]); break;
    case 'f32[]': h.u32(GgufValueType.ARRAY); h.u32(GgufValueType.FLOAT32); h.u64(v.value.length); for (let i = 0; i < v.value.length; i++) h.f32(v.value[i]); break;
  }
}

/** The header bytes (padded to the alignment) and each tensor's offset in the data section. */
export function encodeGgufHeader(kv: ReadonlyMap<string, GgufValue>, tensors: readonly GgufTensorPlan[]): { header: Uint8Array; offsets: number[]; dataBytes: number } {
  const h = new HeaderBytes();
  h.u32(GGUF_MAGIC);
  h.u32(GGUF_VERSION);
  h.u64(tensors.length);
  h.u64(kv.size);
  for (const [key, value] of kv) {
    h.string(key);
    writeValue(h, value);
  }
  const offsets: number[] = [];
  let offset = 0;
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`GGUF tensor "${t.name}" planned twice`);
    names.add(t.name);
    const g = GGML[t.type];
    const inner = t.shape[t.shape.length - 1] ?? 1;
    if (inner % g.blockSize !== 0) throw new Error(`GGUF tensor "${t.name}": rows of ${inner} values are not whole ${t.type} blocks of ${g.blockSize}`);
    h.string(t.name);
    h.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) h.u64(t.shape[d]);
    h.u32(g.id);
    h.u64(offset);
    offsets.push(offset);
    const bytes = tensorBytes(t.type, count(t.shape));
    offset += bytes + pad(bytes);
  }
  h.zeros(pad(h.length));
  return { header: h.bytes(), offsets, dataBytes: offset };
}

export class GgufStreamWriter {
  readonly temp: string;
  /** Bytes of the whole file once finished. */
  readonly totalBytes: number;
  private fd: number | undefined;
  private next = 0;

  constructor(readonly file: string, kv: ReadonlyMap<string, GgufValue>, readonly tensors: readonly GgufTensorPlan[]) {
    const { header, dataBytes } = encodeGgufHeader(kv, tensors);
    this.totalBytes = header.length + dataBytes;
    this.temp = tempPathBeside(file);
    this.fd = openSync(this.temp, 'wx');
    try {
      writeAll(this.fd, header);
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  /** Appends the next planned tensor's encoded bytes (and the padding after them). */
  write(name: string, bytes: Uint8Array): void {
    const planned = this.tensors[this.next];
    if (!planned) throw new Error(`tensor "${name}" written after every planned tensor`);
    if (planned.name !== name) throw new Error(`tensor "${name}" written out of order: "${planned.name}" comes next`);
    const want = tensorBytes(planned.type, count(planned.shape));
    if (bytes.length !== want) throw new Error(`tensor "${name}": ${bytes.length} bytes for ${planned.type} [${planned.shape.join(', ')}] (${want} expected)`);
    writeAll(this.fd!, bytes);
    const p = pad(bytes.length);
    if (p) writeAll(this.fd!, new Uint8Array(p));
    this.next++;
  }

  /** Closes the file and renames it into place; every planned tensor must have been written. */
  finish(): void {
    if (this.next !== this.tensors.length) throw new Error(`finish() after ${this.next} of ${this.tensors.length} tensors`);
    fsyncSync(this.fd!);
    closeSync(this.fd!);
    this.fd = undefined;
    renameSync(this.temp, this.file);
  }

  /** Closes and removes the temporary file (after a failure or a cancel). */
  abort(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    rmSync(this.temp, { force: true });
  }
}

// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length N,
// N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the data section, every tensor row-major and little-endian. Offsets are relative to
// the data section. Reading validates everything the Rust reference validates (offsets
// inside the data, sizes matching shapes, no overlaps or holes) so that a damaged file gives
// one clear error instead of garbage weights.
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { basename, join, sep } from 'node:path';
import { HostTensor, ModelFormatError, WeightMap } from './types';
import { readBytesAt, readExactlyAt, readFloat32At, writeAll, writeFileAtomic } from './binaryFile';
import {
  bfloat16BitsToFloat32, float16BitsToFloat32, float32ToBfloat16Bits, float32ToFloat16Bits,
} from './halfFloat';

/** dtypes written by this module. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';

/** Bytes per element of the dtypes read as float32 weights. */
const READABLE_DTYPES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2 };
/** dtypes the format defines but that are not floating-point weights we can use. */
const OTHER_SAFETENSORS_DTYPES = new Set([
  'BOOL', 'U8', 'I8', 'U16', 'I16', 'U32', 'I32', 'U64', 'I64', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F6_E2M3', 'F6_E3M2', 'F4', 'C64',
]);

/** The Rust reference refuses headers over 100 MB; so do we, before allocating them. */
const MAX_HEADER_BYTES = 100_000_000;

export const SINGLE_FILE_NAME = 'model.safetensors';
export const INDEX_FILE_NAME = 'model.safetensors.index.json';

export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** Byte range within the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  /** Absolute file offset of the data section. */
  dataStart: number;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const product = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

function parseHeader(fd: number, file: string): SafetensorsHeader {
  const fileSize = fstatSync(fd).size;
  if (fileSize < 8) throw new ModelFormatError(file, `file is ${fileSize} bytes, too short to hold the 8-byte safetensors header length`);
  const headerLength = Buffer.from(readBytesAt(fd, 0, 8, file)).readBigUInt64LE(0);
  if (headerLength > BigInt(fileSize - 8)) {
    throw new ModelFormatError(file, `header length ${headerLength} runs past the end of the file (${fileSize} bytes): truncated or not a safetensors file`);
  }
  const n = Number(headerLength);
  if (n > MAX_HEADER_BYTES) throw new ModelFormatError(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit of the format`);
  const text = Buffer.from(readBytesAt(fd, 8, n, file)).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ModelFormatError(file, `header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ModelFormatError(file, 'header is not a JSON object of tensors');
  }
  const duplicate = firstDuplicateKey(text);
  if (duplicate !== undefined) {
    throw new ModelFormatError(file, `header names tensor ${JSON.stringify(duplicate)} twice: JSON keeps only the last, so the file is ambiguous`);
  }
  const dataStart = 8 + n;
  const dataSize = fileSize - dataStart;
  let metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(value, file);
      continue;
    }
    entries.push(parseEntry(name, value, dataSize, file));
  }
  checkLayout(entries, dataSize, file);
  return { entries, metadata, dataStart };
}

/**
 * The first key that the header's top-level object repeats, if any. JSON.parse keeps the
 * last of two equal keys silently, so this scans the text itself: strings (with escapes)
 * are skipped whole and only keys at nesting depth 1 are compared. Runs after JSON.parse
 * accepted the text, so the text is known to be well-formed.
 */
export function firstDuplicateKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (ch === '{' || ch === '[') {
      depth++;
      expectKey = depth === 1 && ch === '{';
    } else if (ch === '}' || ch === ']') {
      depth--;
    } else if (ch === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return undefined;
}

function parseMetadata(value: unknown, file: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ModelFormatError(file, '"__metadata__" is not an object of strings');
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new ModelFormatError(file, `"__metadata__" key "${k}" is not a string`);
  }
  return value as Record<string, string>;
}

function parseEntry(name: string, value: unknown, dataSize: number, file: string): SafetensorsEntry {
  const bad = (problem: string) => new ModelFormatError(file, `tensor "${name}": ${problem}`);
  if (typeof value !== 'object' || value === null) throw bad('header entry is not an object');
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== 'string') throw bad('missing "dtype"');
  if (!(dtype in READABLE_DTYPES)) {
    if (OTHER_SAFETENSORS_DTYPES.has(dtype)) {
      throw bad(`dtype ${dtype} cannot be read as weights (supported: ${Object.keys(READABLE_DTYPES).join(', ')})`);
    }
    throw bad(`unknown dtype "${dtype}"`);
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) throw bad(`"shape" is not a list of non-negative integers: ${JSON.stringify(shape)}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
    throw bad(`"data_offsets" is not [begin, end] with 0 <= begin <= end: ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (end > dataSize) throw bad(`data_offsets [${begin}, ${end}] run past the end of the data section (${dataSize} bytes): truncated file?`);
  const expected = product(shape) * READABLE_DTYPES[dtype];
  if (end - begin !== expected) {
    throw bad(`data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape [${shape.join(', ')}] of ${dtype} needs ${expected}`);
  }
  return { name, dtype, shape, begin, end };
}

/** Tensors must tile the data section exactly: an overlap or a gap means a damaged file. */
function checkLayout(entries: SafetensorsEntry[], dataSize: number, file: string): void {
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let position = 0;
  let previous: SafetensorsEntry | undefined;
  for (const e of sorted) {
    if (e.begin < position && previous) {
      throw new ModelFormatError(file, `tensors "${previous.name}" and "${e.name}" overlap in the data section`);
    }
    if (e.begin > position) throw new ModelFormatError(file, `bytes ${position}..${e.begin} of the data section belong to no tensor`);
    position = e.end;
    previous = e;
  }
  if (position !== dataSize) {
    throw new ModelFormatError(file, `data section is ${dataSize} bytes but its tensors end at byte ${position}`);
  }
}

function readEntry(fd: number, header: SafetensorsHeader, e: SafetensorsEntry, file: string): HostTensor {
  const count = product(e.shape);
  const position = header.dataStart + e.begin;
  let data: Float32Array;
  switch (e.dtype) {
    case 'F32':
      data = readFloat32At(fd, position, count, file);
      break;
    case 'F16':
    case 'BF16': {
      const bits = new Uint16Array(count);
      readExactlyAt(fd, new Uint8Array(bits.buffer), position, file);
      data = e.dtype === 'F16' ? float16BitsToFloat32(bits) : bfloat16BitsToFloat32(bits);
      break;
    }
    default: {
      const wide = new Float64Array(count);
      readExactlyAt(fd, new Uint8Array(wide.buffer), position, file);
      data = Float32Array.from(wide);
    }
  }
  return { shape: [...e.shape], data };
}

/**
 * Reads one tensor's data as float32, opening the file for this read only. Values that are
 * not finite (NaN, infinity) are refused here, naming the tensor, so a corrupted weight
 * fails at load rather than as a NaN loss later.
 */
export function readSafetensorsEntry(file: string, header: SafetensorsHeader, e: SafetensorsEntry): HostTensor {
  const fd = openForReading(file);
  let t: HostTensor;
  try {
    t = readEntry(fd, header, e, file);
  } finally {
    closeSync(fd);
  }
  const d = t.data;
  for (let i = 0; i < d.length; i++) {
    // x - x is 0 for finite x and NaN for NaN and infinities: one comparison per value.
    if (d[i] - d[i] !== 0) throw new ModelFormatError(file, `tensor "${e.name}" holds ${d[i]} at flat index ${i}: the weights are corrupted`);
  }
  return t;
}

/** The one tensor a streamed WeightMap keeps after reading it (see streamedTensor). */
interface ReadSlot {
  entry?: SafetensorsEntry;
  data?: Float32Array;
}

/**
 * A tensor whose data is read from disk when `data` is used. The map's tensors share one
 * slot holding the last tensor read, so repeated uses of one tensor (t.data.length, then
 * t.data[i]) read it once, while a model built from the map - quantizing or uploading each
 * tensor, then dropping it - holds one float32 copy at a time: loading peaks near the
 * resident size plus the largest tensor instead of the whole checkpoint in float32.
 * (Not a WeakRef cache: a WeakRef keeps its target alive until the current job ends, and a
 * model is built in one synchronous job, so every tensor would stay alive.)
 */
export function streamedTensor(file: string, header: SafetensorsHeader, e: SafetensorsEntry, slot: ReadSlot = {}): HostTensor {
  return {
    shape: [...e.shape],
    get data(): Float32Array {
      if (slot.entry !== e || !slot.data) {
        slot.data = undefined; // drop the previous tensor before reading the next
        slot.data = readSafetensorsEntry(file, header, e).data;
        slot.entry = e;
      }
      return slot.data;
    },
  };
}

/**
 * The tensors of one or more safetensors files as a WeightMap whose values read their data
 * on first use (streamedTensor). Only headers are read here; a name in two files is refused.
 */
export function streamSafetensors(files: string[]): { tensors: WeightMap; metadata: Record<string, string>; dtypes: Map<string, string> } {
  const tensors: WeightMap = new Map();
  const dtypes = new Map<string, string>();
  const where = new Map<string, string>();
  let metadata: Record<string, string> = {};
  const slot: ReadSlot = {};
  for (const file of files) {
    const header = readSafetensorsHeader(file);
    metadata = { ...header.metadata, ...metadata };
    for (const e of header.entries) {
      const other = where.get(e.name);
      if (other !== undefined) throw new ModelFormatError(file, `tensor "${e.name}" also appears in ${basename(other)}`);
      where.set(e.name, file);
      tensors.set(e.name, streamedTensor(file, header, e, slot));
      dtypes.set(e.name, e.dtype);
    }
  }
  return { tensors, metadata, dtypes };
}

/**
 * A sharded checkpoint's tensors, streamed: the index and every shard's header are checked
 * against each other (each tensor in the shard the index names, every shard tensor listed)
 * before any data is read.
 */
export function streamSafetensorsSharded(dir: string): { tensors: WeightMap; metadata: Record<string, string>; dtypes: Map<string, string> } {
  const indexFile = join(dir, INDEX_FILE_NAME);
  const weightMap = readShardIndex(indexFile);
  const shards = [...new Set(weightMap.values())];
  const perShard = new Map<string, Set<string>>();
  for (const shard of shards) perShard.set(shard, new Set(readSafetensorsHeader(join(dir, shard)).entries.map((e) => e.name)));
  for (const [name, shard] of weightMap) {
    if (!perShard.get(shard)!.has(name)) throw new ModelFormatError(indexFile, `tensor "${name}" is mapped to ${shard}, which does not contain it`);
  }
  for (const [shard, names] of perShard) {
    for (const name of names) {
      if (weightMap.get(name) !== shard) {
        throw new ModelFormatError(join(dir, shard), `tensor "${name}" is not listed for this shard in ${INDEX_FILE_NAME}`);
      }
    }
  }
  return streamSafetensors(shards.map((s) => join(dir, s)));
}

/** Just the header: names, dtypes and shapes, without reading any tensor data. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fd = openForReading(file);
  try {
    return parseHeader(fd, file);
  } finally {
    closeSync(fd);
  }
}

/** Every tensor of a .safetensors file as float32, with the file's string metadata. */
export function readSafetensors(file: string): { tensors: WeightMap; metadata: Record<string, string> } {
  const fd = openForReading(file);
  try {
    const header = parseHeader(fd, file);
    const tensors: WeightMap = new Map();
    for (const e of header.entries) tensors.set(e.name, readEntry(fd, header, e, file));
    return { tensors, metadata: header.metadata };
  } finally {
    closeSync(fd);
  }
}

function openForReading(file: string): number {
  try {
    return openSync(file, 'r');
  } catch (err) {
    throw new ModelFormatError(file, `cannot open (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** The `weight_map` of a sharded checkpoint's index: tensor name -> shard file name. */
export function readShardIndex(indexFile: string): Map<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(indexFile, 'utf8'));
  } catch (err) {
    throw new ModelFormatError(indexFile, `cannot read the shard index (${(err as Error).message})`);
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new ModelFormatError(indexFile, 'has no "weight_map" object');
  }
  const out = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap)) {
    // A shard is a file beside the index: never a path that could leave the folder.
    if (typeof shard !== 'string' || shard === '' || shard.includes('/') || shard.includes(sep) || shard === '..') {
      throw new ModelFormatError(indexFile, `tensor "${name}" maps to ${JSON.stringify(shard)}, not a file name in the same folder`);
    }
    out.set(name, shard);
  }
  return out;
}

/** A checkpoint split into shards listed by `model.safetensors.index.json` in `dir`. */
export function readSafetensorsSharded(dir: string): { tensors: WeightMap; metadata: Record<string, string> } {
  const indexFile = join(dir, INDEX_FILE_NAME);
  const weightMap = readShardIndex(indexFile);
  const tensors: WeightMap = new Map();
  let metadata: Record<string, string> = {};
  for (const shard of new Set(weightMap.values())) {
    const file = join(dir, shard);
    const part = readSafetensors(file);
    metadata = { ...part.metadata, ...metadata };
    for (const [name, t] of part.tensors) {
      if (tensors.has(name)) throw new ModelFormatError(file, `tensor "${name}" also appears in another shard`);
      tensors.set(name, t);
    }
  }
  for (const [name, shard] of weightMap) {
    if (!tensors.has(name)) throw new ModelFormatError(indexFile, `tensor "${name}" is mapped to ${shard}, which does not contain it`);
  }
  return { tensors, metadata };
}

// ---- writing ----

export interface WriteSafetensorsOptions {
  dtype: SafetensorsDtype;
  /** String metadata; `format: "pt"` is always included, as transformers requires it. */
  metadata?: Record<string, string>;
}

const BYTES_PER_ELEMENT: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };

function encode(t: HostTensor, dtype: SafetensorsDtype): Uint8Array {
  const data = t.data;
  if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const bits = dtype === 'F16' ? float32ToFloat16Bits(data) : float32ToBfloat16Bits(data);
  return new Uint8Array(bits.buffer);
}

function checkTensor(name: string, t: HostTensor): void {
  if (name === '__metadata__') throw new Error('"__metadata__" is reserved by the safetensors header and cannot name a tensor');
  if (!t.shape.every(isCount) || product(t.shape) !== t.data.length) {
    throw new Error(`tensor "${name}": shape [${t.shape.join(', ')}] does not match its ${t.data.length} values`);
  }
}

/**
 * The header bytes (length prefix included) for tensors laid out in the given order,
 * padded with spaces to a multiple of 8 as the Rust writer does.
 */
export function encodeSafetensorsHeader(entries: Iterable<{ name: string; shape: number[] }>, dtype: SafetensorsDtype,
  metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', ...metadata } };
  let offset = 0;
  for (const { name, shape } of entries) {
    const bytes = shape.reduce((a, b) => a * b, 1) * BYTES_PER_ELEMENT[dtype];
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
  json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const out = Buffer.alloc(8 + json.length);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  return out;
}

function encodeHeader(tensors: WeightMap, opts: WriteSafetensorsOptions): Uint8Array {
  for (const [name, t] of tensors) checkTensor(name, t);
  return encodeSafetensorsHeader([...tensors].map(([name, t]) => ({ name, shape: t.shape })), opts.dtype, opts.metadata);
}

/** Writes `tensors` (in map order) to `file`, atomically: a temp file beside it, then a rename. */
export function writeSafetensors(file: string, tensors: WeightMap, opts: WriteSafetensorsOptions): void {
  const header = encodeHeader(tensors, opts);
  writeFileAtomic(file, (fd) => {
    writeAll(fd, header);
    for (const t of tensors.values()) writeAll(fd, encode(t, opts.dtype));
  });
}

export interface WriteShardedOptions extends WriteSafetensorsOptions {
  /** Largest data size of one shard; a single tensor larger than this gets a shard of its own. */
  maxShardBytes: number;
}

/** Shard file name as transformers' save_pretrained writes it. */
export function shardFileName(k: number, n: number): string {
  const pad = (i: number) => String(i).padStart(5, '0');
  return `model-${pad(k)}-of-${pad(n)}.safetensors`;
}

/**
 * Writes `tensors` into `dir` as transformers does: one `model.safetensors` when everything
 * fits in one shard, else `model-0000k-of-0000n.safetensors` plus `model.safetensors.index.json`
 * (written last, so an interrupted write never leaves an index naming missing shards).
 * Returns the paths written.
 */
export function writeSafetensorsSharded(dir: string, tensors: WeightMap, opts: WriteShardedOptions): { files: string[]; index?: string } {
  if (!(opts.maxShardBytes > 0)) throw new Error(`maxShardBytes must be positive, got ${opts.maxShardBytes}`);
  const shards: WeightMap[] = [];
  let current: WeightMap = new Map();
  let currentBytes = 0;
  let totalBytes = 0;
  for (const [name, t] of tensors) {
    checkTensor(name, t);
    const bytes = t.data.length * BYTES_PER_ELEMENT[opts.dtype];
    if (current.size > 0 && currentBytes + bytes > opts.maxShardBytes) {
      shards.push(current);
      current = new Map();
      currentBytes = 0;
    }
    current.set(name, t);
    currentBytes += bytes;
    totalBytes += bytes;
  }
  shards.push(current);

  if (shards.length === 1) {
    const file = join(dir, SINGLE_FILE_NAME);
    writeSafetensors(file, shards[0], opts);
    return { files: [file] };
  }
  const files: string[] = [];
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    const name = shardFileName(i + 1, shards.length);
    const file = join(dir, name);
    writeSafetensors(file, shard, opts);
    files.push(file);
    for (const tensorName of shard.keys()) weightMap[tensorName] = basename(file);
  });
  const index = join(dir, INDEX_FILE_NAME);
  const json = Buffer.from(JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 2) + '\n');
  writeFileAtomic(index, (fd) => writeAll(fd, json));
  return { files, index };
}

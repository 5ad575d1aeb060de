// Small WebAssembly SIMD modules, encoded here byte by byte (no toolchain at install), that
// run on tfjs-backend-wasm's own heap: they import its memory, so they read and write the
// tensors tfjs allocated through views, with no copies. Only the few instructions the
// kernels in this folder use are spelled out; the binary format is WebAssembly 1.0 with
// the 128-bit SIMD proposal (Node 16.4 and later).
import { tf } from '../../tf';

/** The few parts of tfjs-backend-wasm's Emscripten module used here. */
export interface EmscriptenLike {
  asm?: { memory?: WebAssembly.Memory };
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  HEAPU8: Uint8Array;
}

/** Unsigned LEB128, as the binary format writes sizes, counts and opcodes. */
export function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

/** Signed LEB128, for i32.const. */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) { out.push(b); return out; }
    out.push(b | 0x80);
  }
}

const SIMD = 0xfd;
const simd = (code: number) => [SIMD, ...leb(code)];
export const I32 = 0x7f, F32 = 0x7d, V128 = 0x7b;

export const op = {
  localGet: (i: number) => [0x20, ...leb(i)], localSet: (i: number) => [0x21, ...leb(i)], localTee: (i: number) => [0x22, ...leb(i)],
  i32Const: (v: number) => [0x41, ...sleb(v)],
  i32Add: [0x6a], i32Sub: [0x6b], i32Mul: [0x6c], i32Eqz: [0x45],
  f32Load: [0x2a, 2, 0],
  f32Const: (v: number) => [0x43, ...new Uint8Array(Float32Array.of(v).buffer)],
  f32Sqrt: [0x91], f32Add: [0x92], f32Sub: [0x93], f32Mul: [0x94], f32Div: [0x95],
  v128Load: (offset = 0) => [...simd(0x00), 0, ...leb(offset)],
  v128Store: (offset = 0) => [...simd(0x0b), 0, ...leb(offset)],
  v128Const: (bytes: ArrayLike<number>) => [...simd(0x0c), ...Array.from(bytes)],
  shuffle: (lanes: number[]) => [...simd(0x0d), ...lanes],
  swizzle: simd(0x0e), f32x4Splat: simd(0x13), f32x4ExtractLane: (lane: number) => [...simd(0x1f), lane],
  v128And: simd(0x4e), i8x16ShrU: simd(0x6d),
  f32x4Add: simd(0xe4), f32x4Sub: simd(0xe5), f32x4Mul: simd(0xe6), f32x4Div: simd(0xe7), f32x4PMin: simd(0xea), f32x4PMax: simd(0xeb),
  i32x4Shl: simd(0xab), i32x4Add: simd(0xae),
  i32x4Splat: simd(0x11),
  block: [0x02, 0x40], loop: [0x03, 0x40], brIf: (depth: number) => [0x0d, depth], end: [0x0b],
};

/** p += by (an i32 local). */
export const advance = (p: number, by: number) => [...op.localGet(p), ...op.i32Const(by), ...op.i32Add, ...op.localSet(p)];
/** n -= 1, then branch back to the enclosing loop while n != 0. */
export const countDown = (n: number) => [...op.localGet(n), ...op.i32Const(1), ...op.i32Sub, ...op.localTee(n), ...op.brIf(0)];
/** The sum of the four lanes of a v128 local, as an f32 on the stack. */
export const laneSum = (v: number) => [
  ...op.localGet(v), ...op.f32x4ExtractLane(0), ...op.localGet(v), ...op.f32x4ExtractLane(1), ...op.f32Add,
  ...op.localGet(v), ...op.f32x4ExtractLane(2), ...op.f32Add, ...op.localGet(v), ...op.f32x4ExtractLane(3), ...op.f32Add,
];

/** Four lanes of one float32 constant, as a v128.const (one load; f32.const + splat is two instructions). */
const splat = (v: number) => op.v128Const(new Uint8Array(Float32Array.of(v, v, v, v).buffer));

/**
 * e^x of a v128 local, four lanes, left on the stack (uses the v128 locals n and r as
 * scratch): x clamped to [-87.3, 88.3] (float32's normal range, so 2^n stays finite), the
 * range reduction x = n ln2 + r with |r| <= ln2 / 2 (ln 2 split in two so n ln2_hi is
 * exact), a degree-6 Taylor polynomial for e^r (below 2e-7 relative, float32's rounding),
 * and 2^n built in the exponent bits. n is rounded by adding 1.5 * 2^23, which leaves n in
 * the low bits of the sum: (sum + 127) << 23 is 2^n, with no float-to-int conversion.
 * ops/fastExp.ts is the same in JavaScript.
 */
export function expLanes(x: number, n: number, r: number): number[] {
  const MAGIC = 12582912; // 1.5 * 2^23
  const horner = [1 / 720, 1 / 120, 1 / 24, 1 / 6, 0.5, 1, 1];
  const poly: number[] = [...splat(horner[0])];
  for (const c of horner.slice(1)) poly.push(...op.localGet(r), ...op.f32x4Mul, ...splat(c), ...op.f32x4Add);
  return [
    ...op.localGet(x), ...splat(88.3), ...op.f32x4PMin, ...splat(-87.3), ...op.f32x4PMax, ...op.localSet(r), // r = clamped x for now (pmin/pmax: one instruction each)
    ...op.localGet(r), ...splat(1.4426950408889634), ...op.f32x4Mul, ...splat(MAGIC), ...op.f32x4Add, ...op.localSet(n), // n + 1.5 * 2^23
    ...op.localGet(r), // r = x - n ln2_hi - n ln2_lo, n = (n + magic) - magic
    ...op.localGet(n), ...splat(MAGIC), ...op.f32x4Sub, ...splat(0.693145751953125), ...op.f32x4Mul, ...op.f32x4Sub,
    ...op.localGet(n), ...splat(MAGIC), ...op.f32x4Sub, ...splat(1.4286068203094173e-6), ...op.f32x4Mul, ...op.f32x4Sub, ...op.localSet(r),
    ...poly,
    ...op.localGet(n), ...op.i32Const(127), ...op.i32x4Splat, ...op.i32x4Add, ...op.i32Const(23), ...op.i32x4Shl,
    ...op.f32x4Mul,
  ];
}

export interface FunctionSpec {
  name: string;
  params: number[];
  /** Locals beyond the parameters, as [count, type] runs. */
  locals: [number, number][];
  body: number[];
}

/** A module of functions returning nothing, importing `env.memory`, each exported under its name. */
export function moduleBytes(fns: FunctionSpec[]): Uint8Array<ArrayBuffer> {
  const section = (id: number, content: number[]) => [id, ...leb(content.length), ...content];
  const name = (s: string) => [...leb(s.length), ...Array.from(new TextEncoder().encode(s))];
  const vec = (items: number[][]) => [...leb(items.length), ...items.flat()];
  const types = fns.map((f) => [0x60, ...leb(f.params.length), ...f.params, 0]);
  const bodies = fns.map((f) => {
    const code = [...vec(f.locals.map(([n, t]) => [...leb(n), t])), ...f.body, ...op.end];
    return [...leb(code.length), ...code];
  });
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, [1, ...name('env'), ...name('memory'), 0x02, 0x00, 1]), // a memory of at least one page
    ...section(3, vec(fns.map((_, i) => leb(i)))),
    ...section(7, vec(fns.map((f, i) => [...name(f.name), 0x00, ...leb(i)]))),
    ...section(10, vec(bodies)),
  ]);
}

/** tfjs-backend-wasm's module, where it is the current backend. */
export function emscripten(): EmscriptenLike | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  return (tf.backend() as unknown as { wasm?: EmscriptenLike }).wasm;
}

let memoryOf: WebAssembly.Memory | undefined;
const instances = new Map<string, WebAssembly.Exports | null>();

/**
 * The exports of a module built by `build` on the current wasm backend's memory, built once
 * per key and backend; undefined off wasm or where this runtime cannot compile it (no SIMD).
 */
export function onHeap(key: string, build: () => Uint8Array<ArrayBuffer>): WebAssembly.Exports | undefined {
  const memory = emscripten()?.asm?.memory;
  if (!memory || !(memory instanceof WebAssembly.Memory)) return undefined;
  if (memory !== memoryOf) { instances.clear(); memoryOf = memory; } // a new backend instance
  let exports = instances.get(key);
  if (exports === undefined) {
    try {
      exports = new WebAssembly.Instance(new WebAssembly.Module(build()), { env: { memory } }).exports;
    } catch {
      exports = null; // the caller's JavaScript loop runs instead
    }
    instances.set(key, exports);
  }
  return exports ?? undefined;
}

/** Whether every array is a view on the wasm heap (so its byteOffset is an address there). */
export function onTheHeap(em: EmscriptenLike, ...arrays: ArrayBufferView[]): boolean {
  return arrays.every((a) => a.buffer === em.HEAPU8.buffer);
}

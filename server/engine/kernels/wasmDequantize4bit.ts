// Dequantize4bit's inner loop as a small WebAssembly SIMD function that runs on the wasm
// backend's own heap (it imports tfjs-backend-wasm's memory), for W in storage order.
// The JavaScript loop (quant/kernels.ts) takes 1.2-2.5 ns a value on this project's
// machines, and the backward pass of every 4-bit projection dequantizes its whole W again:
// about a tenth of a training step on the benchmark shape. Here 32 values cost two
// shuffles to interleave the nibbles and, for each 16, four table lookups and six
// shuffles to assemble the floats and four multiplies by the block's absmax.
//
// The lookup: i8x16.swizzle indexes 16 bytes, and a code is 0..15, so the 16 levels are
// kept as four byte planes (plane k holds byte k of every level's float32), looked up
// apart and interleaved back into floats. Each value is then fl(level * absmax), one
// float32 rounding, as the JavaScript loop computes it: the two agree bit for bit.
//
// The module is built with ./wasm/assemble.ts, once per codebook, its planes constants.
// Blocks of a multiple of 32 values only; the caller runs a short last block, other block
// sizes and other backends in JavaScript.
import { advance, countDown, emscripten, moduleBytes, onHeap, onTheHeap, op, I32, V128 } from './wasm/assemble';

type Deq = (codes: number, absmax: number, out: number, blocks: number, groups: number) => void;

// Lane patterns: the first and second halves of two vectors interleaved byte by byte, and
// two interleaved byte pairs merged into four-byte floats.
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
const INTERLEAVE_LOW = range(0, 8).flatMap((i) => [i, i + 16]);
const INTERLEAVE_HIGH = range(8, 8).flatMap((i) => [i, i + 16]);
const FLOATS_LOW = range(0, 4).flatMap((j) => [2 * j, 2 * j + 1, 16 + 2 * j, 17 + 2 * j]);
const FLOATS_HIGH = range(4, 4).flatMap((j) => [2 * j, 2 * j + 1, 16 + 2 * j, 17 + 2 * j]);

// Locals: parameters 0-4, then g (i32) and the v128 values.
const [CODES, ABSMAX, OUT, BLOCKS, GROUPS, G] = [0, 1, 2, 3, 4, 5];
const [S, V, HI, LO, IDX, B0, T01, T23] = [6, 7, 8, 9, 10, 11, 15, 16];

/** 16 codes (IDX) -> 16 floats, times the absmax splat S, stored at OUT + base. */
function sixteen(planes: Uint8Array[], base: number): number[] {
  const code: number[] = [];
  for (let k = 0; k < 4; k++) code.push(...op.v128Const(planes[k]), ...op.localGet(IDX), ...op.swizzle, ...op.localSet(B0 + k));
  for (const [half, at] of [[INTERLEAVE_LOW, 0], [INTERLEAVE_HIGH, 32]] as const) {
    code.push(...op.localGet(B0), ...op.localGet(B0 + 1), ...op.shuffle(half), ...op.localSet(T01));
    code.push(...op.localGet(B0 + 2), ...op.localGet(B0 + 3), ...op.shuffle(half), ...op.localSet(T23));
    for (const [floats, off] of [[FLOATS_LOW, 0], [FLOATS_HIGH, 16]] as const) {
      code.push(...op.localGet(OUT), ...op.localGet(T01), ...op.localGet(T23), ...op.shuffle(floats),
        ...op.localGet(S), ...op.f32x4Mul, ...op.v128Store(base + at + off));
    }
  }
  return code;
}

/** deq(codes, absmax, out, blocks, groups), groups = 32-value groups per block. */
function dequantizeModule(levels: Float32Array): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(levels.buffer.slice(levels.byteOffset, levels.byteOffset + 64));
  const planes = [0, 1, 2, 3].map((k) => Uint8Array.from({ length: 16 }, (_, j) => bytes[4 * j + k]));
  const body = [
    ...op.block,
    ...op.localGet(BLOCKS), ...op.i32Eqz, ...op.brIf(0),
    ...op.loop, // blocks
    ...op.localGet(ABSMAX), ...op.f32Load, ...op.f32x4Splat, ...op.localSet(S),
    ...op.localGet(GROUPS), ...op.localSet(G),
    ...op.loop, // 32-value groups of this block
    ...op.localGet(CODES), ...op.v128Load(), ...op.localSet(V),
    ...op.localGet(V), ...op.i32Const(4), ...op.i8x16ShrU, ...op.localSet(HI), // even values: the high nibbles
    ...op.localGet(V), ...op.v128Const(new Uint8Array(16).fill(15)), ...op.v128And, ...op.localSet(LO),
    ...op.localGet(HI), ...op.localGet(LO), ...op.shuffle(INTERLEAVE_LOW), ...op.localSet(IDX),
    ...sixteen(planes, 0),
    ...op.localGet(HI), ...op.localGet(LO), ...op.shuffle(INTERLEAVE_HIGH), ...op.localSet(IDX),
    ...sixteen(planes, 64),
    ...advance(CODES, 16), ...advance(OUT, 128),
    ...countDown(G),
    ...op.end,
    ...advance(ABSMAX, 4),
    ...countDown(BLOCKS),
    ...op.end,
    ...op.end,
  ];
  return moduleBytes([{ name: 'deq', params: [I32, I32, I32, I32, I32], locals: [[1, I32], [11, V128]], body }]);
}

const levelKeys = new Map<Float32Array, string>();
function deqFor(levels: Float32Array): Deq | undefined {
  let key = levelKeys.get(levels);
  if (!key) levelKeys.set(levels, (key = `dequantize4bit:${levelKeys.size}`));
  return onHeap(key, () => dequantizeModule(levels))?.deq as Deq | undefined;
}

/**
 * Writes fl(levels[code] * absmax[block]) for every whole block of W into `out`, which
 * must be a view on the wasm heap, as `packed` is; `absmax` may live anywhere (it is
 * copied in: numBlocks values, 1/64 of W). Returns how many values it wrote (whole blocks
 * only; the caller does the rest), or 0 where the SIMD path does not apply.
 */
export function dequantizeBlocksSimd(out: Float32Array, packed: Int32Array, absmax: Float32Array, levels: Float32Array,
  n: number, blockSize: number): number {
  if (blockSize % 32 !== 0) return 0;
  const em = emscripten();
  const blocks = Math.floor(n / blockSize);
  if (!em || blocks === 0 || !onTheHeap(em, out, packed)) return 0;
  const deq = deqFor(levels);
  if (!deq) return 0;
  // Offsets before any allocation: growing the heap detaches the views.
  const codesAt = packed.byteOffset, outAt = out.byteOffset;
  if (onTheHeap(em, absmax)) {
    deq(codesAt, absmax.byteOffset, outAt, blocks, blockSize / 32);
    return blocks * blockSize;
  }
  const ptr = em._malloc(blocks * 4);
  try {
    new Float32Array(em.HEAPU8.buffer, ptr, blocks).set(absmax.subarray(0, blocks));
    deq(codesAt, ptr, outAt, blocks, blockSize / 32);
  } finally {
    em._free(ptr);
  }
  return blocks * blockSize;
}

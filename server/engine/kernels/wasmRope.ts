// The fused rotary-embedding kernel (ops/rope.ts) as a WebAssembly SIMD loop on the wasm
// backend's heap, four values at a time, for head sizes of a multiple of 8 (every model's:
// 64 or 128). Legend: hs head size, h = hs / 2, T positions; x is (B, heads, T, hs) and the
// cos/sin tables (T, hs), so row r of x takes table row r mod T. With sign = +1 forward and
// -1 for the gradient (the inverse rotation):
//   y_i     = x_i cos_i         - sign x_{i+h} sin_i
//   y_{i+h} = x_{i+h} cos_{i+h} + sign x_i     sin_{i+h}      (i < h)
// Each value is two products and a sum in float32, as the JavaScript loop's double
// arithmetic rounded once: they agree to float32 rounding.
import { advance, countDown, emscripten, moduleBytes, onHeap, onTheHeap, op, F32, I32, V128, type FunctionSpec } from './wasm/assemble';

type Rope = (x: number, cos: number, sin: number, y: number, rows: number, T: number, h4: number, hBytes: number, sign: number) => void;

function rope(): FunctionSpec {
  // params: x 0, cos 1, sin 2, y 3, rows 4, T 5, h4 6 (h / 4), hBytes 7 (h * 4), sign 8 (f32)
  // locals: j 9, xp 10, yp 11, cp 12, sp 13, left 14 (rows to the table's end), row 15 (table row offset, bytes) (i32);
  //         a 16, b 17, sv 18 (v128)
  const [X, COS, SIN, Y, ROWS, T, H4, HB, SIGN, J, XP, YP, CP, SP, LEFT, ROW, A, B, SV] =
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18];
  const loadAt = (p: number, offsetOf: number[] = []) => [...op.localGet(p), ...offsetOf, ...op.v128Load()];
  const plusH = [...op.localGet(HB), ...op.i32Add];
  const body = [
    ...op.localGet(SIGN), ...op.f32x4Splat, ...op.localSet(SV),
    ...op.localGet(T), ...op.localSet(LEFT), ...op.i32Const(0), ...op.localSet(ROW),
    ...op.block,
    ...op.localGet(ROWS), ...op.i32Eqz, ...op.brIf(0),
    ...op.loop, // rows
    ...op.localGet(X), ...op.localSet(XP), ...op.localGet(Y), ...op.localSet(YP),
    ...op.localGet(COS), ...op.localGet(ROW), ...op.i32Add, ...op.localSet(CP),
    ...op.localGet(SIN), ...op.localGet(ROW), ...op.i32Add, ...op.localSet(SP),
    ...op.localGet(H4), ...op.localSet(J),
    ...op.loop, // four i < h at a time
    ...loadAt(XP), ...op.localSet(A), ...loadAt(XP, plusH), ...op.localSet(B),
    // y_i = a cos_i - sign b sin_i
    ...op.localGet(YP),
    ...op.localGet(A), ...loadAt(CP), ...op.f32x4Mul,
    ...op.localGet(B), ...loadAt(SP), ...op.f32x4Mul, ...op.localGet(SV), ...op.f32x4Mul, ...op.f32x4Sub,
    ...op.v128Store(),
    // y_{i+h} = b cos_{i+h} + sign a sin_{i+h}
    ...op.localGet(YP), ...plusH,
    ...op.localGet(B), ...loadAt(CP, plusH), ...op.f32x4Mul,
    ...op.localGet(A), ...loadAt(SP, plusH), ...op.f32x4Mul, ...op.localGet(SV), ...op.f32x4Mul, ...op.f32x4Add,
    ...op.v128Store(),
    ...advance(XP, 16), ...advance(YP, 16), ...advance(CP, 16), ...advance(SP, 16), ...countDown(J),
    ...op.end,
    // the next row of x and y: past this row's second half; the next table row, back to 0 after T
    ...op.localGet(XP), ...op.localGet(HB), ...op.i32Add, ...op.localSet(X),
    ...op.localGet(YP), ...op.localGet(HB), ...op.i32Add, ...op.localSet(Y),
    ...op.localGet(ROW), ...op.localGet(HB), ...op.localGet(HB), ...op.i32Add, ...op.i32Add, ...op.localSet(ROW),
    ...op.block,
    ...op.localGet(LEFT), ...op.i32Const(1), ...op.i32Sub, ...op.localTee(LEFT), ...op.brIf(0),
    ...op.localGet(T), ...op.localSet(LEFT), ...op.i32Const(0), ...op.localSet(ROW),
    ...op.end,
    ...countDown(ROWS),
    ...op.end,
    ...op.end,
  ];
  return { name: 'rope', params: [I32, I32, I32, I32, I32, I32, I32, I32, F32], locals: [[7, I32], [3, V128]], body };
}

/** y = the rotation of x by the tables (sign -1: its inverse) on the heap; false where the SIMD path does not apply. */
export function ropeSimd(x: Float32Array, cos: Float32Array, sin: Float32Array, y: Float32Array, T: number, hs: number, sign: 1 | -1): boolean {
  const em = emscripten();
  if (!em || hs % 8 !== 0 || hs === 0 || T === 0 || x.length % (T * hs) !== 0 || cos.length < T * hs || sin.length < T * hs ||
    !onTheHeap(em, x, cos, sin, y)) return false;
  const f = onHeap('rope', () => moduleBytes([rope()]))?.rope as Rope | undefined;
  if (!f) return false;
  f(x.byteOffset, cos.byteOffset, sin.byteOffset, y.byteOffset, x.length / hs, T, hs / 8, (hs / 2) * 4, sign);
  return true;
}

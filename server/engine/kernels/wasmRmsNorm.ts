// The fused RMSNorm kernels (ops/rmsNorm.ts) as WebAssembly SIMD loops on the wasm
// backend's heap, four values at a time, for rows whose length is a multiple of 4 (every
// model's hidden size). Legend: C the row length, r = 1 / sqrt(mean(x^2) + eps) per row.
//   forward   y = x r w
//   backward  g = dy w,  dx = r g - x (r^3 / C) sum(g x),  dw = sum over rows of dy x r
// The JavaScript loops took about 6% of a training step on the benchmark shape (five
// forward and four backward calls over (256, 512) each). Sums are taken in float32 lanes
// here and in float64 by the JavaScript loop: they agree to float32 rounding (the tests
// hold both to float64 references).
import { advance, countDown, emscripten, laneSum, moduleBytes, onHeap, onTheHeap, op, F32, I32, V128, type FunctionSpec } from './wasm/assemble';

type Forward = (x: number, w: number, y: number, rows: number, c4: number, invC: number, eps: number) => void;
type Backward = (dy: number, x: number, w: number, dx: number, dw: number, rows: number, c4: number, invC: number, eps: number) => void;

const vzero = op.v128Const(new Uint8Array(16));
const load = (p: number) => [...op.localGet(p), ...op.v128Load()];

/** r = 1 / sqrt(ss invC + eps), with ss on the stack. */
const inverseRms = (invC: number, eps: number) => [
  ...op.localGet(invC), ...op.f32Mul, ...op.localGet(eps), ...op.f32Add, ...op.f32Sqrt, // sqrt(ss/C + eps)
];

function forward(): FunctionSpec {
  // params: x 0, w 1, y 2, rows 3, c4 4, invC 5, eps 6; locals: j 7, xp 8, wp 9, yp 10 (i32), r 11 (f32), acc 12, rv 13 (v128)
  const [X, W, Y, ROWS, C4, INVC, EPS, J, XP, WP, YP, R, ACC, RV] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
  const body = [
    ...op.block,
    ...op.localGet(ROWS), ...op.i32Eqz, ...op.brIf(0),
    ...op.loop, // rows
    ...vzero, ...op.localSet(ACC), ...op.localGet(X), ...op.localSet(XP), ...op.localGet(C4), ...op.localSet(J),
    ...op.loop, // acc += x^2
    ...op.localGet(ACC), ...load(XP), ...load(XP), ...op.f32x4Mul, ...op.f32x4Add, ...op.localSet(ACC),
    ...advance(XP, 16), ...countDown(J),
    ...op.end,
    ...op.f32Const(1), ...laneSum(ACC), ...inverseRms(INVC, EPS), ...op.f32Div, ...op.localSet(R),
    ...op.localGet(R), ...op.f32x4Splat, ...op.localSet(RV),
    ...op.localGet(X), ...op.localSet(XP), ...op.localGet(W), ...op.localSet(WP), ...op.localGet(Y), ...op.localSet(YP),
    ...op.localGet(C4), ...op.localSet(J),
    ...op.loop, // y = x r w
    ...op.localGet(YP), ...load(XP), ...op.localGet(RV), ...op.f32x4Mul, ...load(WP), ...op.f32x4Mul, ...op.v128Store(),
    ...advance(XP, 16), ...advance(WP, 16), ...advance(YP, 16), ...countDown(J),
    ...op.end,
    ...op.localGet(XP), ...op.localSet(X), ...op.localGet(YP), ...op.localSet(Y), // the next row
    ...countDown(ROWS),
    ...op.end,
    ...op.end,
  ];
  return { name: 'forward', params: [I32, I32, I32, I32, I32, F32, F32], locals: [[4, I32], [1, F32], [2, V128]], body };
}

function backward(): FunctionSpec {
  // params: dy 0, x 1, w 2, dx 3, dw 4, rows 5, c4 6, invC 7, eps 8
  // locals: j 9, dyp 10, xp 11, wp 12, dxp 13, dwp 14 (i32); r 15, k 16 (f32); accS 17, accG 18, rv 19, kv 20, vx 21, vdy 22 (v128)
  const [DY, X, W, DX, DW, ROWS, C4, INVC, EPS, J, DYP, XP, WP, DXP, DWP, R, K, ACCS, ACCG, RV, KV, VX, VDY] =
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22];
  const body = [
    // dw = 0
    ...op.localGet(DW), ...op.localSet(DWP), ...op.localGet(C4), ...op.localSet(J),
    ...op.loop, ...op.localGet(DWP), ...vzero, ...op.v128Store(), ...advance(DWP, 16), ...countDown(J), ...op.end,
    ...op.block,
    ...op.localGet(ROWS), ...op.i32Eqz, ...op.brIf(0),
    ...op.loop, // rows
    ...vzero, ...op.localSet(ACCS), ...vzero, ...op.localSet(ACCG),
    ...op.localGet(DY), ...op.localSet(DYP), ...op.localGet(X), ...op.localSet(XP), ...op.localGet(W), ...op.localSet(WP),
    ...op.localGet(C4), ...op.localSet(J),
    ...op.loop, // accS += x^2, accG += dy w x
    ...load(XP), ...op.localSet(VX),
    ...op.localGet(ACCS), ...op.localGet(VX), ...op.localGet(VX), ...op.f32x4Mul, ...op.f32x4Add, ...op.localSet(ACCS),
    ...op.localGet(ACCG), ...load(DYP), ...load(WP), ...op.f32x4Mul, ...op.localGet(VX), ...op.f32x4Mul, ...op.f32x4Add, ...op.localSet(ACCG),
    ...advance(XP, 16), ...advance(DYP, 16), ...advance(WP, 16), ...countDown(J),
    ...op.end,
    ...op.f32Const(1), ...laneSum(ACCS), ...inverseRms(INVC, EPS), ...op.f32Div, ...op.localSet(R),
    // k = r^3 sum(g x) / C
    ...op.localGet(R), ...op.localGet(R), ...op.f32Mul, ...op.localGet(R), ...op.f32Mul, ...laneSum(ACCG), ...op.f32Mul,
    ...op.localGet(INVC), ...op.f32Mul, ...op.localSet(K),
    ...op.localGet(R), ...op.f32x4Splat, ...op.localSet(RV), ...op.localGet(K), ...op.f32x4Splat, ...op.localSet(KV),
    ...op.localGet(DY), ...op.localSet(DYP), ...op.localGet(X), ...op.localSet(XP), ...op.localGet(W), ...op.localSet(WP),
    ...op.localGet(DX), ...op.localSet(DXP), ...op.localGet(DW), ...op.localSet(DWP), ...op.localGet(C4), ...op.localSet(J),
    ...op.loop, // dx = r dy w - k x;  dw += dy x r
    ...load(XP), ...op.localSet(VX), ...load(DYP), ...op.localSet(VDY),
    ...op.localGet(DXP),
    ...op.localGet(RV), ...op.localGet(VDY), ...op.f32x4Mul, ...load(WP), ...op.f32x4Mul,
    ...op.localGet(KV), ...op.localGet(VX), ...op.f32x4Mul, ...op.f32x4Sub, ...op.v128Store(),
    ...op.localGet(DWP), ...load(DWP), ...op.localGet(VDY), ...op.localGet(VX), ...op.f32x4Mul, ...op.localGet(RV), ...op.f32x4Mul,
    ...op.f32x4Add, ...op.v128Store(),
    ...advance(XP, 16), ...advance(DYP, 16), ...advance(WP, 16), ...advance(DXP, 16), ...advance(DWP, 16), ...countDown(J),
    ...op.end,
    ...op.localGet(DYP), ...op.localSet(DY), ...op.localGet(XP), ...op.localSet(X), ...op.localGet(DXP), ...op.localSet(DX),
    ...countDown(ROWS),
    ...op.end,
    ...op.end,
  ];
  return { name: 'backward', params: [I32, I32, I32, I32, I32, I32, I32, F32, F32], locals: [[6, I32], [2, F32], [6, V128]], body };
}

const kernels = () => onHeap('rmsNorm', () => moduleBytes([forward(), backward()]));

/** y = RMSNorm(x) w on the heap; false where the SIMD path does not apply (the caller's loop runs). */
export function rmsNormSimd(x: Float32Array, w: Float32Array, y: Float32Array, C: number, eps: number): boolean {
  const em = emscripten();
  if (!em || C % 4 !== 0 || C === 0 || !onTheHeap(em, x, w, y)) return false;
  const f = kernels()?.forward as Forward | undefined;
  if (!f) return false;
  f(x.byteOffset, w.byteOffset, y.byteOffset, x.length / C, C / 4, 1 / C, eps);
  return true;
}

/** dx, dw of RMSNorm on the heap; false where the SIMD path does not apply. */
export function rmsNormGradSimd(dy: Float32Array, x: Float32Array, w: Float32Array, dx: Float32Array, dw: Float32Array, C: number, eps: number): boolean {
  const em = emscripten();
  if (!em || C % 4 !== 0 || C === 0 || !onTheHeap(em, dy, x, w, dx, dw)) return false;
  const b = kernels()?.backward as Backward | undefined;
  if (!b) return false;
  b(dy.byteOffset, x.byteOffset, w.byteOffset, dx.byteOffset, dw.byteOffset, x.length / C, C / 4, 1 / C, eps);
  return true;
}

// exp(x) for the host kernels: V8's Math.exp costs about 20 ns a call here, which made a
// JavaScript SwiGLU slower than tfjs-wasm's three vectorized kernels. This is the usual
// range reduction, x = n ln2 + r with |r| <= ln2 / 2, a degree-7 Taylor polynomial for
// e^r (truncation below 1.5e-8 relative) and 2^n from a table: a few ns, and well inside
// float32 precision for every x. Below -87.3 (under float32's smallest normal) it returns
// 0, which is also what masked attention scores (-1e9) need.
const LOG2E = 1.4426950408889634;
const LN2_HI = 0.693145751953125; // ln 2 split so that n * LN2_HI is exact for |n| < 2^10
const LN2_LO = 1.4286068203094173e-6;
const POW2 = Float64Array.from({ length: 256 }, (_, i) => 2 ** (i - 127));

export function fastExp(x: number): number {
  if (x < -87.3) return 0;
  if (x > 88.7) return Infinity;
  const n = Math.round(x * LOG2E);
  const r = x - n * LN2_HI - n * LN2_LO;
  const p = 1 + r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (1 / 5040)))))));
  return POW2[n + 127] * p;
}

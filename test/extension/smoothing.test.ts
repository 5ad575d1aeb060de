// EMA smoothing as TensorBoard's slider does it, against a plain float64 loop.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { emaSmooth } from '../../webview/smoothing';

/** The reference: TensorBoard's debiased EMA written out. */
function reference(xs: number[], w: number): number[] {
  const out: number[] = [];
  let last = 0;
  for (let i = 0; i < xs.length; i++) {
    last = last * w + (1 - w) * xs[i];
    out.push(last / (1 - Math.pow(w, i + 1)));
  }
  return out;
}

describe('EMA smoothing', () => {
  test('matches the debiased EMA', () => {
    const xs = Array.from({ length: 200 }, (_, i) => 5 / (1 + i / 10) + Math.sin(i * 1.7) * 0.3);
    for (const w of [0.1, 0.6, 0.9, 0.99]) {
      const got = emaSmooth(xs, w);
      reference(xs, w).forEach((r, i) => assert.ok(Math.abs(got[i]! - r) < 1e-12, `w=${w} i=${i}`));
    }
  });

  test('weight 0 returns the values; the first point is the first value at any weight', () => {
    assert.deepEqual(emaSmooth([3, 1, 2], 0), [3, 1, 2]);
    for (const w of [0.5, 0.95]) assert.equal(emaSmooth([7, 1, 1], w)[0], 7);
  });

  test('a constant series stays constant; noise shrinks as the weight grows', () => {
    assert.deepEqual(emaSmooth([2, 2, 2, 2], 0.9).map((v) => Number(v!.toFixed(12))), [2, 2, 2, 2]);
    const noisy = Array.from({ length: 400 }, (_, i) => (i % 2 ? 1 : -1));
    const spread = (w: number) => Math.max(...emaSmooth(noisy, w).slice(100).map((v) => Math.abs(v!)));
    assert.ok(spread(0.9) < spread(0.5) && spread(0.5) < 1);
  });

  test('gaps stay gaps and do not move the average', () => {
    const got = emaSmooth([1, null, 3, Number.NaN, 5], 0.5);
    const dense = emaSmooth([1, 3, 5], 0.5);
    assert.deepEqual(got, [dense[0], null, dense[1], null, dense[2]]);
  });
});

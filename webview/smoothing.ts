// Exponential moving average as TensorBoard's smoothing slider does it: each point is
// weight x (the smoothed value before) + (1 - weight) x (this value), debiased by
// 1 - weight^n so that the first points are not pulled towards zero. Gaps (null) and
// non-finite values are kept as gaps and do not move the average. Pure: unit-tested.

/** `weight` in [0, 1): 0 returns the values as they are, 0.99 smooths over ~100 points. */
export function emaSmooth(values: readonly (number | null)[], weight: number): (number | null)[] {
  if (!(weight > 0)) return values.map((v) => (v !== null && Number.isFinite(v) ? v : null));
  const w = Math.min(weight, 0.999);
  let acc = 0;
  let n = 0;
  return values.map((v) => {
    if (v === null || !Number.isFinite(v)) return null;
    acc = acc * w + (1 - w) * v;
    n++;
    return acc / (1 - w ** n);
  });
}

// The matrix-multiply ceiling of a TensorFlow.js backend: float32 GFLOP/s of square
// products, the best our engine's matMuls can do there. Timed by queueing `reps`
// products and waiting for the last (the GPU runs its queue in order).
import { tf } from '../../../server/engine/tf';

export async function matmulCeiling(sizes: number[] = [1024, 2048, 4096], reps = 10): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const n of sizes) {
    const a = tf.randomNormal([n, n]), b = tf.randomNormal([n, n]);
    const wait = async (t: tf.Tensor) => {
      const corner = tf.slice(t, [0, 0], [1, 1]);
      await corner.data();
      corner.dispose();
    };
    const warm = tf.matMul(a, b);
    await wait(warm);
    warm.dispose();
    const t0 = performance.now();
    const products: tf.Tensor[] = [];
    for (let i = 0; i < reps; i++) products.push(tf.matMul(a, b));
    await wait(products[products.length - 1]);
    const seconds = (performance.now() - t0) / 1000;
    tf.dispose([a, b, ...products]);
    out[`${n}`] = (2 * n ** 3 * reps) / seconds / 1e9;
  }
  return out;
}

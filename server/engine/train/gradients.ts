// Gradient bookkeeping between backward passes and the optimizer: accumulation over
// micro-batches and clipping by global norm. Both return fresh tensors and leave their
// inputs to the caller, so ownership is the same at every call.
import { tf } from '../tf';

/**
 * Sums gradients over the micro-batches of one optimizer step; mean() gives the sum
 * scaled by 1/n, the gradient of the mean of the micro-batch losses (what PyTorch gets
 * from loss / gradient_accumulation_steps).
 */
export class GradAccumulator {
  private sum: tf.Tensor[] | null = null;
  private count = 0;

  /** Micro-batches added since the last mean(). */
  get microBatches(): number {
    return this.count;
  }

  /** Adds one micro-batch's gradients (aligned with the parameters; not disposed here). */
  add(grads: tf.Tensor[]): void {
    const old = this.sum;
    if (old && old.length !== grads.length) throw new Error(`${grads.length} gradients, expected ${old.length}`);
    this.sum = tf.tidy(() => (old ? old.map((s, i) => tf.add(s, grads[i])) : grads.map((g) => g.clone())));
    if (old) tf.dispose(old);
    this.count++;
  }

  /** The mean gradient over the micro-batches added; the caller owns it. Resets the sum. */
  mean(): tf.Tensor[] {
    const sum = this.sum;
    if (!sum) throw new Error('GradAccumulator.mean: no gradients were added');
    const scale = 1 / this.count;
    const mean = tf.tidy(() => sum.map((s) => tf.mul(s, scale)));
    tf.dispose(sum);
    this.sum = null;
    this.count = 0;
    return mean;
  }

  dispose(): void {
    if (this.sum) tf.dispose(this.sum);
    this.sum = null;
    this.count = 0;
  }
}

/**
 * Scales the gradients so their global L2 norm is at most maxNorm, as PyTorch's
 * clip_grad_norm_: coefficient min(1, maxNorm / (norm + 1e-6)), and the norm returned is
 * the one BEFORE clipping. maxNorm <= 0 or Infinity only measures (transformers treats
 * max_grad_norm 0 as no clipping). A NaN/Inf norm is returned as is for the loop to stop on.
 */
export async function clipByGlobalNorm(grads: tf.Tensor[], maxNorm: number): Promise<{ grads: tf.Tensor[]; norm: number }> {
  // Each tensor's sum of squares on the device, their total in float64 on the host.
  const sums = tf.tidy(() => tf.stack(grads.map((g) => tf.sum(tf.square(g)))));
  // An asynchronous read: the webgpu backend cannot read synchronously in Node.
  const parts = await sums.data();
  sums.dispose();
  let total = 0;
  for (const s of parts) total += s;
  const norm = Math.sqrt(total);
  const coef = maxNorm > 0 && Number.isFinite(maxNorm) ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
  return { grads: tf.tidy(() => grads.map((g) => tf.mul(g, coef))), norm };
}

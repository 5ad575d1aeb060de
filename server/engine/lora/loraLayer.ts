// LoRA (Hu et al. 2021) with PEFT's conventions: A is (r, in), Kaiming-uniform with
// a = sqrt(5) (bound 1/sqrt(in)); B is (out, r), zeros, so a fresh adapter leaves the
// base model's output unchanged; scaling = alpha / r, or alpha / sqrt(r) with rsLoRA.
//   y = base(x) + (dropout(x) A^T B^T) * scaling
import { tf } from '../tf';
import type { Rng } from '../rng';
import { dropout } from '../ops/dropout';

export class LoraLayer {
  readonly A: tf.Variable; // (r, in)
  readonly B: tf.Variable; // (out, r)

  constructor(
    readonly name: string, // e.g. model.layers.0.self_attn.q_proj
    readonly inFeatures: number,
    readonly outFeatures: number,
    readonly r: number,
    readonly scaling: number,
    readonly dropout: number,
    init: { rng: Rng } | { A: Float32Array; B: Float32Array },
  ) {
    let a: Float32Array, b: Float32Array;
    if ('rng' in init) {
      const bound = 1 / Math.sqrt(inFeatures);
      a = new Float32Array(r * inFeatures);
      for (let i = 0; i < a.length; i++) a[i] = init.rng.uniform(-bound, bound);
      b = new Float32Array(outFeatures * r);
    } else {
      a = init.A;
      b = init.B;
    }
    // Unnamed: TensorFlow.js names must be unique per process, and two models may be loaded.
    this.A = tf.variable(tf.tensor2d(a, [r, inFeatures]), true);
    this.B = tf.variable(tf.tensor2d(b, [outFeatures, r]), true);
  }

  /** The adapter's contribution for x (N, in) -> (N, out). `dropoutSeed` only while training. */
  delta(x: tf.Tensor2D, dropoutSeed?: number): tf.Tensor2D {
    const xd = dropoutSeed !== undefined && this.dropout > 0 ? dropout(x, this.dropout, dropoutSeed) : x;
    const h = tf.matMul(xd as tf.Tensor2D, this.A, false, true); // (N, r)
    // Scaled at rank r, not at the output width: one pass over (N, r) instead of (N, out).
    return tf.matMul(tf.mul(h, this.scaling), this.B, false, true); // (N, out)
  }

  dispose(): void {
    this.A.dispose();
    this.B.dispose();
  }
}

export { loraScaling } from './names';

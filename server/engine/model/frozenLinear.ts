// A frozen base projection y = x W^T (+ b), as one op whose gradient TensorFlow.js sees.
//
// The base weight is never trained, so only the gradient with respect to x is needed:
// dx = dy W. Both directions ask the weight store for the layout they multiply by, so no
// transposed matMul runs, and the backward pass dequantizes the 4-bit weight again
// instead of keeping the float copy alive from the forward pass (QLoRA's memory saving).
import { tf } from '../tf';
import { transposesAreFree } from '../kernels/nativeBatchMatMul';

/** What a frozen projection needs from its weight store (NF4/FP4 packed, or plain fp32). */
export interface FrozenWeight {
  /** [out, in] */
  readonly shape: [number, number];
  /** The float32 weight, [out, in], or [in, out] when `transpose`. The caller disposes it. */
  dequantize(opts?: { transpose?: boolean }): tf.Tensor2D;
  /** Bytes held on the backend for this weight. */
  residentBytes(): number;
  dispose(): void;
}

/** Full-precision store (quantization: none), kept as W^T so the forward is a plain product. */
export class DenseWeight implements FrozenWeight {
  private readonly wT: tf.Tensor2D; // (in, out)

  constructor(readonly shape: [number, number], data: Float32Array) {
    const [out, inp] = shape;
    const t = new Float32Array(out * inp);
    for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) t[i * out + o] = data[o * inp + i];
    this.wT = tf.tensor2d(t, [inp, out]);
  }

  dequantize(opts?: { transpose?: boolean }): tf.Tensor2D {
    return opts?.transpose ? this.wT.clone() : tf.transpose(this.wT);
  }

  residentBytes(): number {
    return this.wT.size * 4;
  }

  dispose(): void {
    this.wT.dispose();
  }
}

/** y = x W^T for x (N, in) -> (N, out); differentiable in x only. */
export function frozenLinear(x: tf.Tensor2D, w: FrozenWeight): tf.Tensor2D {
  const op = tf.customGrad(((xIn: tf.Tensor) => {
    // A native GEMM takes the transpose in its packing: dequantize W in storage order (the
    // fast, sequential write) and let it multiply by W^T. Dense weights are kept as W^T.
    const storageOrder = transposesAreFree() && !(w instanceof DenseWeight);
    const wT = storageOrder ? w.dequantize() : w.dequantize({ transpose: true }); // (out, in) or (in, out)
    const y = tf.matMul(xIn as tf.Tensor2D, wT, false, storageOrder);
    wT.dispose();
    return {
      value: y,
      // The tidy frees the recomputed weight as soon as dx exists, not at the end of backprop.
      gradFunc: (dy: tf.Tensor) => tf.tidy(() => {
        if (transposesAreFree() && w instanceof DenseWeight) return tf.matMul(dy as tf.Tensor2D, w.dequantize({ transpose: true }), false, true);
        const wFull = w.dequantize(); // (out, in)
        return tf.matMul(dy as tf.Tensor2D, wFull);
      }),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x) as tf.Tensor2D;
}

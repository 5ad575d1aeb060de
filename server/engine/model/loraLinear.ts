// A frozen projection plus its LoRA adapter, y = x W^T + s (x A^T) B^T, as one op with its
// own gradient (dx, dA, dB), where the native provider runs on wasm and fused ops are on
// (kernels/nativeLoraLinear.ts: one native call each way instead of about twenty tfjs
// kernels). Elsewhere, or with dropout on the adapter's input, the caller keeps the two
// ops apart (frozenLinear + LoraLayer.delta); both compute the same sums.
//
// As in frozenLinear, the backward pass dequantizes the 4-bit weight again rather than
// keeping the float copy from the forward pass alive.
import { tf } from '../tf';
import { transposesAreFree } from '../kernels/nativeBatchMatMul';
import { LORA_LINEAR, LORA_LINEAR_GRAD } from '../kernels/nativeLoraLinear';
import { customGrad, fusedHere, runFused } from '../ops/hostKernel';
import { DenseWeight, type FrozenWeight } from './frozenLinear';
import type { LoraLayer } from '../lora/loraLayer';

/** Whether loraLinear() runs here for this adapter (native GEMM on wasm, fused ops on, no dropout this pass). */
export function loraLinearRuns(adapter: LoraLayer, dropoutSeed?: number): boolean {
  const dropping = dropoutSeed !== undefined && adapter.dropout > 0;
  return !dropping && transposesAreFree() && fusedHere(LORA_LINEAR);
}

/** x (N, in) -> (N, out); differentiable in x, A and B. Call only where loraLinearRuns(). */
export function loraLinear(x: tf.Tensor2D, w: FrozenWeight, adapter: LoraLayer): tf.Tensor2D {
  // Dense weights are kept as W^T (in, out); quantized ones dequantize fastest in storage order.
  const wt = w instanceof DenseWeight ? 1 : 0;
  const weight = () => (wt ? w.dequantize({ transpose: true }) : w.dequantize());
  const attrs = { scaling: adapter.scaling, wt };
  const op = customGrad<tf.Tensor2D>((xIn: tf.Tensor, a: tf.Tensor, b: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
    // Runs inside the engine's tidy: the weight and the unsaved outputs are freed on return.
    const [y, hs] = runFused<tf.Tensor[]>(LORA_LINEAR, { x: xIn, w: weight(), a, b }, attrs);
    save([xIn, hs, a, b]);
    return {
      value: y as tf.Tensor2D,
      gradFunc: (dy, [xs, hss, as, bs]) => tf.tidy(() =>
        runFused<tf.Tensor[]>(LORA_LINEAR_GRAD, { dy, w: weight(), a: as, b: bs, x: xs, hs: hss }, attrs)),
    };
  });
  return op(x, adapter.A, adapter.B);
}

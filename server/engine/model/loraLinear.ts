// A frozen projection plus its LoRA adapter, y = x W^T + s (x A^T) B^T, as one op with its
// own gradient (dx, dA, dB), where the native provider runs on wasm and fused ops are on
// (kernels/nativeLoraLinear.ts: one native call each way instead of about twenty tfjs
// kernels). Elsewhere, or with dropout on the adapter's input, the caller keeps the two
// ops apart (frozenLinear + LoraLayer.delta); both compute the same sums.
//
// A 4-bit weight's forward pass hands the packed codes to the native call, which
// dequantizes inside it (no float W on the wasm heap, no JavaScript dequantize loop); as
// in frozenLinear, the backward pass dequantizes the weight again rather than keeping a
// float copy from the forward pass alive.
import { tf } from '../tf';
import { transposesAreFree } from '../kernels/nativeBatchMatMul';
import { fourBitForwardRuns, LORA_LINEAR, LORA_LINEAR_4BIT, LORA_LINEAR_GRAD } from '../kernels/nativeLoraLinear';
import { customGrad, fusedHere, runFused } from '../ops/hostKernel';
import { QuantizedWeight } from '../quant/quantizedWeight';
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
  const packed = w instanceof QuantizedWeight ? w.kernelOperands() : undefined;
  const forward = (xIn: tf.Tensor, a: tf.Tensor, b: tf.Tensor): tf.Tensor[] => {
    if (!packed || !fourBitForwardRuns(packed.attrs)) return runFused<tf.Tensor[]>(LORA_LINEAR, { x: xIn, w: weight(), a, b }, attrs);
    return runFused<tf.Tensor[]>(LORA_LINEAR_4BIT, { x: xIn, a, b, ...packed.tensors } as tf.NamedTensorMap,
      { ...packed.attrs, scaling: adapter.scaling } as unknown as Record<string, number>);
  };
  const op = customGrad<tf.Tensor2D>((xIn: tf.Tensor, a: tf.Tensor, b: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
    // Runs inside the engine's tidy: the weight and the unsaved outputs are freed on return.
    const [y, hs] = forward(xIn, a, b);
    save([xIn, hs, a, b]);
    return {
      value: y as tf.Tensor2D,
      gradFunc: (dy, [xs, hss, as, bs]) => tf.tidy(() =>
        runFused<tf.Tensor[]>(LORA_LINEAR_GRAD, { dy, w: weight(), a: as, b: bs, x: xs, hs: hss }, attrs)),
    };
  });
  return op(x, adapter.A, adapter.B);
}

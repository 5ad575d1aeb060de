// A frozen projection plus its LoRA adapter, y = x W^T + s (x A^T) B^T, as one op with its
// own gradient (dx, dA, dB), where the native provider runs on wasm and fused ops are on
// (kernels/nativeLoraLinear.ts: one native call each way instead of about twenty tfjs
// kernels). Dropout on the adapter's input stays a tfjs op ahead of the fused one, which
// then takes x and dropout(x) and returns a gradient for each. Elsewhere the caller keeps
// the two ops apart (frozenLinear + LoraLayer.delta); both compute the same sums.
//
// A 4-bit weight's forward pass hands the packed codes to the native call, which
// dequantizes inside it (no float W on the wasm heap, no JavaScript dequantize loop); as
// in frozenLinear, the backward pass dequantizes the weight again rather than keeping a
// float copy from the forward pass alive.
import { tf } from '../tf';
import { transposesAreFree } from '../kernels/nativeBatchMatMul';
import { fourBitForwardRuns, LORA_ADAPTER_GRAD, LORA_LINEAR, LORA_LINEAR_4BIT, LORA_LINEAR_GRAD } from '../kernels/nativeLoraLinear';
import { customGrad, fusedHere, runFused } from '../ops/hostKernel';
import { dropout } from '../ops/dropout';
import { QuantizedWeight } from '../quant/quantizedWeight';
import { DenseWeight, type FrozenWeight } from './frozenLinear';
import type { LoraLayer } from '../lora/loraLayer';

/** Whether loraLinear() runs here (native GEMM on wasm, fused ops on). */
export function loraLinearRuns(): boolean {
  return transposesAreFree() && fusedHere(LORA_LINEAR);
}

/**
 * x (N, in) -> (N, out); differentiable in A and B, and in x unless `inputGrad` is false
 * (x depends on no trainable weight: then the backward pass takes no dy W product and
 * dequantizes nothing). `dropoutSeed` only while training. Call only where loraLinearRuns().
 */
export function loraLinear(x: tf.Tensor2D, w: FrozenWeight, adapter: LoraLayer, dropoutSeed?: number, opts: { inputGrad?: boolean } = {}): tf.Tensor2D {
  // Dense weights are kept as W^T (in, out); quantized ones dequantize fastest in storage order.
  const wt = w instanceof DenseWeight ? 1 : 0;
  const drop = dropoutSeed !== undefined && adapter.dropout > 0 ? 1 : 0;
  const weight = () => (wt ? w.dequantize({ transpose: true }) : w.dequantize());
  const attrs = { scaling: adapter.scaling, wt, drop };
  const packed = w instanceof QuantizedWeight ? w.kernelOperands() : undefined;
  const forward = (xIn: tf.Tensor, xd: tf.Tensor | undefined, a: tf.Tensor, b: tf.Tensor): tf.Tensor[] => {
    const adapterInput: tf.NamedTensorMap = xd ? { xd } : {};
    if (!packed || !fourBitForwardRuns(packed.attrs)) return runFused<tf.Tensor[]>(LORA_LINEAR, { x: xIn, w: weight(), a, b, ...adapterInput }, attrs);
    return runFused<tf.Tensor[]>(LORA_LINEAR_4BIT, { x: xIn, a, b, ...adapterInput, ...packed.tensors } as tf.NamedTensorMap,
      { ...packed.attrs, scaling: adapter.scaling, drop } as unknown as Record<string, number>);
  };
  const xd = drop ? dropout(x, adapter.dropout, dropoutSeed!) : undefined;
  if (opts.inputGrad === false) {
    // x (and xd) are constants here: the op's inputs are A and B only.
    const op = customGrad<tf.Tensor2D>((a: tf.Tensor, b: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
      const [y, hs] = forward(x, xd, a, b);
      // Saved as any input would be: the caller's scope may free x before the backward pass.
      save([xd ?? x, hs, b]);
      return {
        value: y as tf.Tensor2D,
        gradFunc: (dy, [xs, hss, bs]) => tf.tidy(() =>
          runFused<tf.Tensor[]>(LORA_ADAPTER_GRAD, { dy, b: bs, x: xs, hs: hss }, { scaling: adapter.scaling, wt: 0, drop: 0 })),
      };
    });
    return op(adapter.A, adapter.B);
  }
  if (xd) {
    const op = customGrad<tf.Tensor2D>((xIn: tf.Tensor, xdIn: tf.Tensor, a: tf.Tensor, b: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
      const [y, hs] = forward(xIn, xdIn, a, b);
      // x itself is not needed backward: dx = dy W, and dA reads xd.
      save([xdIn, hs, a, b]);
      return {
        value: y as tf.Tensor2D,
        gradFunc: (dy, [xds, hss, as, bs]) => tf.tidy(() =>
          runFused<tf.Tensor[]>(LORA_LINEAR_GRAD, { dy, w: weight(), a: as, b: bs, x: xds, hs: hss }, attrs)),
      };
    });
    return op(x, xd, adapter.A, adapter.B);
  }
  const op = customGrad<tf.Tensor2D>((xIn: tf.Tensor, a: tf.Tensor, b: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
    // Runs inside the engine's tidy: the weight and the unsaved outputs are freed on return.
    const [y, hs] = forward(xIn, undefined, a, b);
    save([xIn, hs, a, b]);
    return {
      value: y as tf.Tensor2D,
      gradFunc: (dy, [xs, hss, as, bs]) => tf.tidy(() =>
        runFused<tf.Tensor[]>(LORA_LINEAR_GRAD, { dy, w: weight(), a: as, b: bs, x: xs, hs: hss }, attrs)),
    };
  });
  return op(x, adapter.A, adapter.B);
}

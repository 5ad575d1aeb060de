// BatchMatMul on the wasm backend through the native provider (native/ortProvider.ts):
// the operands are views on the wasm heap, the product is written straight into the
// output tensor's heap memory, and transposes are taken by the GEMM's packing instead of
// a copy. When the provider is switched off (setNativeKernels(false), for tests that
// compare both paths in one process) the kernel hands over to the wasm kernel it
// replaced (wasmBatchMatMul.ts).
import { tf } from '../tf';
import type { NativeProvider } from './native/ortProvider';
import type { WasmBackendLike } from './backendLike';

let provider: NativeProvider | undefined;
let enabled = true;

/** Installs the native BatchMatMul on wasm in front of the kernel registered now (once per process). */
export function registerNativeBatchMatMul(p: NativeProvider): void {
  if (provider) return;
  const fallback = tf.getKernel('BatchMatMul', 'wasm');
  if (!fallback) throw new Error('the wasm backend has no BatchMatMul kernel to stand in front of');
  provider = p;
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel({
    kernelName: 'BatchMatMul',
    backendName: 'wasm',
    setupFunc: fallback.setupFunc,
    disposeFunc: fallback.disposeFunc,
    kernelFunc: (args) => {
      const a = args.inputs.a as tf.TensorInfo, b = args.inputs.b as tf.TensorInfo;
      if (!enabled || a.dtype !== 'float32' || b.dtype !== 'float32') return fallback.kernelFunc(args);
      const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
      const wasm = args.backend as unknown as WasmBackendLike;
      const outShape = productShape(a.shape, b.shape, transposeA, transposeB);
      const out = wasm.makeOutput(outShape, 'float32');
      // Views are taken after the output's allocation: growing the heap detaches older views.
      const av = wasm.typedArrayFromHeap(a) as Float32Array, bv = wasm.typedArrayFromHeap(b) as Float32Array;
      p.matMul(av, a.shape, bv, b.shape, transposeA, transposeB, wasm.typedArrayFromHeap(out) as Float32Array, outShape);
      return out;
    },
  });
}

/** Switches the native path on or off at run time (both paths stay registered). */
export function setNativeKernels(on: boolean): void {
  enabled = on;
}

/** The provider in use, when one started and is switched on. */
export function activeNativeProvider(): NativeProvider | undefined {
  return enabled ? provider : undefined;
}

/** Whether a transposed operand costs nothing on the current backend (the native GEMM runs). */
export function transposesAreFree(): boolean {
  return enabled && provider !== undefined && tf.getBackend() === 'wasm';
}

/** tfjs's BatchMatMul output shape: broadcast batch dimensions, then (m, n). */
export function productShape(a: readonly number[], b: readonly number[], transposeA: boolean, transposeB: boolean): number[] {
  const ra = a.length, rb = b.length;
  const m = transposeA ? a[ra - 1] : a[ra - 2], ka = transposeA ? a[ra - 2] : a[ra - 1];
  const kb = transposeB ? b[rb - 1] : b[rb - 2], n = transposeB ? b[rb - 2] : b[rb - 1];
  if (ka !== kb) throw new Error(`matMul: inner dimensions differ: a [${a}]${transposeA ? '^T' : ''}, b [${b}]${transposeB ? '^T' : ''}`);
  const outerA = a.slice(0, -2), outerB = b.slice(0, -2);
  const rank = Math.max(outerA.length, outerB.length);
  const outer: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = outerA[outerA.length - rank + i] ?? 1, db = outerB[outerB.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`matMul: batch dimensions differ: a [${a}], b [${b}]`);
    outer.push(Math.max(da, db));
  }
  return [...outer, m, n];
}

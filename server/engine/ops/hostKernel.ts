// Fused ops as kernels that run on the host CPU in JavaScript, one loop over the data
// instead of five to ten tfjs kernels each with its own output, bookkeeping and (for the
// gradient) saved inputs. Registered for the cpu backend (its host arrays) and the wasm
// backend (views on the wasm heap, no copies). Other backends (tensorflow, webgpu) have
// no such kernel and the ops take their composite form (same math in tfjs ops).
import { tf } from '../tf';
import { activeNativeProvider } from '../kernels/nativeBatchMatMul';
import type { NativeProvider } from '../kernels/native/ortProvider';
import type { CpuBackendLike, WasmBackendLike } from '../kernels/backendLike';

export type HostCompute = (inputs: Float32Array[], shapes: number[][], attrs: Record<string, number>, outputs: Float32Array[]) => void;

export interface HostKernelSpec {
  name: string;
  /** The input names, in the order compute() receives them. */
  inputs: string[];
  /** Output shapes from the input shapes. */
  outputShapes(shapes: number[][], attrs: Record<string, number>): number[][];
  compute: HostCompute;
  /**
   * The same kernel on the native provider, where it runs (wasm backend): for work that is
   * mostly exp, which MLAS vectorizes and a JavaScript loop does at ~20 ns a value.
   */
  native?: (p: NativeProvider, inputs: Float32Array[], shapes: number[][], attrs: Record<string, number>, outputs: Float32Array[], outShapes: number[][]) => void;
  /**
   * The same kernel as a WebAssembly SIMD loop on the wasm heap (../kernels/wasm*.ts),
   * tried first there: false where it does not apply (a shape it does not take), and then
   * the native form or the JavaScript loop runs.
   */
  wasmSimd?: (inputs: Float32Array[], shapes: number[][], attrs: Record<string, number>, outputs: Float32Array[]) => boolean;
}

const BACKENDS = ['cpu', 'wasm'] as const;
let fused = true;
let nativeFused = true;

/** Registers the kernel for cpu and wasm (idempotent). */
export function registerHostKernel(spec: HostKernelSpec): void {
  for (const backendName of BACKENDS) {
    if (tf.getKernel(spec.name, backendName)) continue;
    tf.registerKernel({ kernelName: spec.name, backendName, kernelFunc: (args) => runHost(spec, backendName, args) });
  }
}

function runHost(spec: HostKernelSpec, backendName: 'cpu' | 'wasm', args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo | tf.TensorInfo[] {
  const infos = spec.inputs.map((n) => {
    const info = args.inputs[n] as tf.TensorInfo | undefined;
    if (!info) throw new Error(`${spec.name}: input ${n} missing`);
    if (info.dtype !== 'float32') throw new Error(`${spec.name}: input ${n} is ${info.dtype}, expected float32`);
    return info;
  });
  const shapes = infos.map((i) => i.shape);
  const attrs = (args.attrs ?? {}) as Record<string, number>;
  const outShapes = spec.outputShapes(shapes, attrs);
  let outInfos: tf.TensorInfo[];
  if (backendName === 'wasm') {
    const wasm = args.backend as unknown as WasmBackendLike;
    outInfos = outShapes.map((s) => wasm.makeOutput(s, 'float32'));
    // Views after every allocation: growing the heap detaches older views.
    const ins = infos.map((i) => wasm.typedArrayFromHeap(i) as Float32Array);
    const outs = outInfos.map((o) => wasm.typedArrayFromHeap(o) as Float32Array);
    if (!spec.wasmSimd?.(ins, shapes, attrs, outs)) {
      const p = nativeFused && spec.native && activeNativeProvider();
      if (p) spec.native!(p, ins, shapes, attrs, outs, outShapes);
      else spec.compute(ins, shapes, attrs, outs);
    }
  } else {
    const cpu = args.backend as unknown as CpuBackendLike;
    const ins = infos.map((i) => cpu.data.get(i.dataId).values as Float32Array);
    const outs = outShapes.map((s) => new Float32Array(s.reduce((p, d) => p * d, 1)));
    spec.compute(ins, shapes, attrs, outs);
    outInfos = outs.map((o, k) => cpu.makeTensorInfo(outShapes[k], 'float32', o));
  }
  return outInfos.length === 1 ? outInfos[0] : outInfos;
}

/** Whether the fused kernel runs here (registered for the current backend and not switched off). */
export function fusedHere(name: string): boolean {
  return fused && tf.getKernel(name, tf.getBackend()) !== undefined;
}

/** Switches the fused kernels off (composite tfjs ops instead), for tests comparing both paths. */
export function setFusedOps(on: boolean): void {
  fused = on;
}

/** Lets the fused kernels that have a native form run it (default) or their JavaScript loops. */
export function setNativeFusedOps(on: boolean): void {
  nativeFused = on;
}

/** Runs a kernel registered above; one output or several. */
export function runFused<T extends tf.Tensor | tf.Tensor[]>(name: string, inputs: tf.NamedTensorMap, attrs: Record<string, number> = {}): T {
  return tf.engine().runKernel(name, inputs, attrs as unknown as tf.NamedAttrMap) as unknown as T;
}

/** tf.customGrad with the typing this folder needs: f(...inputs, save) -> { value, gradFunc }. */
export function customGrad<T extends tf.Tensor>(f: (...args: never[]) => { value: T; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] }): (...inputs: tf.Tensor[]) => T {
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (...inputs: tf.Tensor[]) => T;
}

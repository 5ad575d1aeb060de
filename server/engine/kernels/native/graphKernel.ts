// A tfjs kernel on the wasm backend that runs one native graph (ortProvider.runGraph) on
// views of the wasm heap: its float32 inputs as they are, its float32 outputs allocated
// by tfjs and written in place by the native call, no copies on either side. The fused
// native ops (LoRA projections, attention, the loss's vocabulary chunks) differ only in
// their graphs, shape checks and extra constant inputs; this is the rest of them.
import { tf } from '../../tf';
import { activeNativeProvider } from '../nativeBatchMatMul';
import type { GraphSpec } from './onnxGraph';
import type { WasmBackendLike } from '../backendLike';

export type ConstantFeed = [Float32Array | BigInt64Array, number[]];

/** What one call needs, worked out from its inputs' shapes and attributes. */
export interface GraphCall {
  /** One per output, in the order of `outputs`. */
  outShapes: number[][];
  /** The session's key: calls with one key share one session (one graph). */
  key: string;
  graph: () => GraphSpec;
  /** Inputs that are not tensors of the op (scalars, axes). */
  constants?: Record<string, ConstantFeed>;
}

export interface GraphKernelSpec {
  name: string;
  inputs: (attrs: Record<string, number>) => string[];
  outputs: (attrs: Record<string, number>) => string[];
  /** Checks the shapes (a mismatch would read past a buffer in native code) and plans the call. */
  plan(shapes: Record<string, number[]>, attrs: Record<string, number>): GraphCall;
  /** The check callers make before using the op, for the error when the provider is gone. */
  guard: string;
}

/** Registers the kernel on wasm (idempotent). */
export function registerGraphKernel(spec: GraphKernelSpec): void {
  if (tf.getKernel(spec.name, 'wasm')) return;
  tf.registerKernel({
    kernelName: spec.name,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const p = activeNativeProvider();
      if (!p) throw new Error(`${spec.name}: the native provider is not running (callers check ${spec.guard})`);
      const attrs = (args.attrs ?? {}) as Record<string, number>;
      const inputs = spec.inputs(attrs), outputs = spec.outputs(attrs);
      const infos = inputs.map((n) => args.inputs[n] as tf.TensorInfo);
      const call = spec.plan(Object.fromEntries(inputs.map((n, k) => [n, infos[k].shape])), attrs);
      const wasm = args.backend as unknown as WasmBackendLike;
      const outInfos = call.outShapes.map((s) => wasm.makeOutput(s, 'float32'));
      // Views after every allocation: growing the heap detaches older views.
      const feeds: Record<string, ConstantFeed> = { ...call.constants };
      inputs.forEach((n, k) => { feeds[n] = [wasm.typedArrayFromHeap(infos[k]) as Float32Array, infos[k].shape]; });
      const fetches: Record<string, [Float32Array, number[]]> = {};
      outputs.forEach((n, k) => { fetches[n] = [wasm.typedArrayFromHeap(outInfos[k]) as Float32Array, call.outShapes[k]]; });
      p.runGraph(call.key, call.graph, feeds, fetches);
      return outInfos.length === 1 ? outInfos[0] : outInfos;
    },
  });
}

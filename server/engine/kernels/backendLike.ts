// What kernels written here use of each TensorFlow.js backend, typed once (so that nothing
// but ../tf imports TensorFlow.js). wasm: an output allocated on the heap, and a view of a
// tensor's bytes there (no copy); a view is only good until the heap grows (an allocation
// can grow it): take views after allocating. cpu: a tensor's values, and a tensor made
// from values.
import type { tf } from '../tf';

export interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

export interface CpuBackendLike {
  data: { get(dataId: tf.DataId): { values?: unknown } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

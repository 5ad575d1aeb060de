// The two methods of tfjs-backend-wasm that kernels written here use, typed once: an output
// allocated on the heap, and a view of a tensor's bytes there (no copy). A view is only good
// until the heap grows (an allocation can grow it): take views after allocating.
import type { tf } from '../tf';

export interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

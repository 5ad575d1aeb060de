// Identity on the wasm backend without a copy.
//
// tfjs-core clones every tensor a kernel saves for its gradient (engine.clone, the
// Identity kernel), and tfjs-backend-wasm's Identity copies the data. Measured on the
// benchmark step (2 layers, seq 256): 264 copies, about 30 ms of CPU per step. Tensors
// are immutable in TensorFlow.js (a variable's assign swaps data ids, it never writes in
// place), so the clone can share the data under a reference count, as the cpu backend's
// Identity already does.
import { tf } from '../tf';

interface RefCounting { incRef(dataId: tf.DataId): void }

let registered = false;

/** Replaces wasm's Identity with a reference-counted share (idempotent). */
export function registerWasmIdentity(): void {
  if (registered) return;
  const original = tf.getKernel('Identity', 'wasm');
  if (!original) return;
  tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({
    kernelName: 'Identity',
    backendName: 'wasm',
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      if (x.dtype === 'string') return original.kernelFunc(args);
      (args.backend as unknown as RefCounting).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
  });
  registered = true;
}

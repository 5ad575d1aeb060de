// A BatchMatMul kernel for the wasm backend that always reaches its fast path.
//
// tfjs-backend-wasm 4.22 multiplies through XNNPACK only for one plain (batch 1, no
// transpose) product; a transposed operand or a batch of more than one falls to a generic
// loop that runs 10-30x slower (measured here: 40 GFLOP/s plain, 3.6 with transposeB,
// 1.4 with transposeA, 3.0 for a batch of 16). Autograd asks for transposed products in
// every matMul gradient, and attention is batched, so this kernel transposes explicitly
// (one cheap pass over memory) and runs each batch entry as its own plain product on
// views into the operands' memory, without copying them.
import { tf } from '../tf';

interface WasmTensorData { id: number; memoryOffset: number; shape: number[] }
interface WasmModule {
  cwrap(name: string, ret: null, args: string[]): (...a: unknown[]) => void;
  tfjs: { registerTensor(id: number, size: number, offset: number): void; disposeData(id: number): void };
}
interface WasmBackend {
  wasm: WasmModule;
  dataIdMap: { get(dataId: object): WasmTensorData };
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  disposeData(dataId: object): boolean;
}

type MatMulFn = (aId: number, aShape: Uint8Array, aRank: number, bId: number, bShape: Uint8Array,
  bRank: number, transposeA: boolean, transposeB: boolean, outId: number) => void;

let plainMatMul: MatMulFn | undefined;
let registered = false;

/** Replaces the wasm backend's BatchMatMul (idempotent). Call after the backend is set. */
export function registerWasmBatchMatMul(): void {
  if (registered) return;
  const original = tf.getKernel('BatchMatMul', 'wasm');
  if (!original) return;
  const transposeKernel = tf.getKernel('Transpose', 'wasm');
  if (!transposeKernel) return;
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel({
    kernelName: 'BatchMatMul',
    backendName: 'wasm',
    setupFunc: (backend) => {
      original.setupFunc?.(backend);
      plainMatMul = (backend as unknown as WasmBackend).wasm.cwrap('BatchMatMul', null,
        ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number']) as MatMulFn;
    },
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as unknown as WasmBackend;
      let a = inputs.a as tf.TensorInfo;
      let b = inputs.b as tf.TensorInfo;
      const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
      const temps: tf.TensorInfo[] = [];
      const swapLast = (x: tf.TensorInfo): tf.TensorInfo => {
        const r = x.shape.length;
        const perm = [...Array(r).keys()];
        [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
        const t = transposeKernel.kernelFunc({ inputs: { x }, backend, attrs: { perm } }) as tf.TensorInfo;
        temps.push(t);
        return t;
      };
      if (transposeA) a = swapLast(a);
      if (transposeB) b = swapLast(b);
      try {
        return batchedPlainProduct(wasm, a, b);
      } finally {
        for (const t of temps) wasm.disposeData(t.dataId);
      }
    },
  });
  registered = true;
}

/** out[i] = a[i] @ b[i] for every batch entry (with broadcasting of a batch of one). */
function batchedPlainProduct(backend: WasmBackend, a: tf.TensorInfo, b: tf.TensorInfo): tf.TensorInfo {
  const ra = a.shape.length, rb = b.shape.length;
  const m = a.shape[ra - 2], k = a.shape[ra - 1], n = b.shape[rb - 1];
  if (b.shape[rb - 2] !== k) {
    throw new Error(`matMul: inner dimensions differ: a ${JSON.stringify(a.shape)}, b ${JSON.stringify(b.shape)}`);
  }
  const outerA = a.shape.slice(0, -2), outerB = b.shape.slice(0, -2);
  const batchA = outerA.reduce((p, d) => p * d, 1), batchB = outerB.reduce((p, d) => p * d, 1);
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) {
    throw new Error(`matMul: batch dimensions differ: a ${JSON.stringify(a.shape)}, b ${JSON.stringify(b.shape)}`);
  }
  const batch = Math.max(batchA, batchB);
  const outOuter = outerA.length >= outerB.length && batchA >= batchB ? outerA : outerB;
  const out = backend.makeOutput([...outOuter, m, n], 'float32');
  const aData = backend.dataIdMap.get(a.dataId), bData = backend.dataIdMap.get(b.dataId);
  const oData = backend.dataIdMap.get(out.dataId);
  const aShape = shapeBytes([1, m, k]), bShape = shapeBytes([1, k, n]);
  const views: number[] = [];
  const view = (offset: number, size: number): number => {
    const id = backend.dataIdNextNumber++;
    backend.wasm.tfjs.registerTensor(id, size, offset);
    views.push(id);
    return id;
  };
  try {
    for (let i = 0; i < batch; i++) {
      const ia = batchA === 1 ? 0 : i, ib = batchB === 1 ? 0 : i;
      const aId = batch === 1 ? aData.id : view(aData.memoryOffset + ia * m * k * 4, m * k);
      const bId = batch === 1 ? bData.id : view(bData.memoryOffset + ib * k * n * 4, k * n);
      const oId = batch === 1 ? oData.id : view(oData.memoryOffset + i * m * n * 4, m * n);
      plainMatMul!(aId, aShape, 3, bId, bShape, 3, false, false, oId);
      // Views are unregistered at once: XNNPACK caches packed weights per tensor id.
      while (views.length) backend.wasm.tfjs.disposeData(views.pop()!);
    }
  } finally {
    while (views.length) backend.wasm.tfjs.disposeData(views.pop()!);
  }
  return out;
}

function shapeBytes(shape: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

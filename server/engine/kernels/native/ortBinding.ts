// The part of onnxruntime-node the native provider uses, typed once: its synchronous
// native binding (dist/binding.js) and its Tensor class. Types only; the package itself
// is loaded by ortProvider.ts, where it is optional.

export interface OrtSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  /** Writes into the tensors given in `fetches`; returns its own copies of them. */
  run(feeds: Record<string, unknown>, fetches: Record<string, unknown>, options: object): Record<string, unknown>;
}

export interface OrtTensorCtor {
  new (type: 'float32' | 'uint8' | 'int64', data: Float32Array | Uint8Array | BigInt64Array, dims: readonly number[]): unknown;
}

export interface OrtBinding { binding: { InferenceSession: new () => OrtSession }; initOrt(): void }

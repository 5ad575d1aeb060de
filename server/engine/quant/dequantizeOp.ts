// The Dequantize4bit op's contract, shared by every kernel that implements it (the cpu
// and wasm kernels in kernels.ts, the WGSL one in ../kernels/webgpuDequantize4bit.ts):
// its name, attributes and inputs. Kept apart so that kernels import it, not each other.
import type { tf } from '../tf';
import type { NestedQuantMap } from './codebooks';
import type { QuantType } from './spec';

export const DEQUANTIZE_4BIT = 'Dequantize4bit';

export interface Dequantize4bitAttrs {
  quantType: QuantType;
  blockSize: number;
  /** (rows, cols) of W as stored. */
  shape: [number, number];
  /** Write W^T, (cols, rows), instead of W. */
  transpose: boolean;
  doubleQuant: boolean;
  /** Double quantization: added back to every decoded absmax. */
  offset: number;
  nestedBlockSize: number;
  nestedQuantMap: NestedQuantMap;
}

/** The kernel's inputs as host arrays (or heap views). */
export interface Dequantize4bitArrays {
  /** (ceil(n / 8),) int32: eight 4-bit codes per word, layout of pack.ts. */
  packed: Int32Array;
  /** (numBlocks,) float32, without double quantization. */
  absmax?: Float32Array;
  /** (ceil(numBlocks / 4),) int32: four 8-bit codes per word, with double quantization. */
  absmaxCodes?: Int32Array;
  /** (ceil(numBlocks / nestedBlockSize),) float32, with double quantization. */
  absmax2?: Float32Array;
}

/** The same inputs as tensors, under the names the kernel reads. */
export interface Dequantize4bitTensors {
  packed: tf.Tensor;
  absmax?: tf.Tensor;
  absmaxCodes?: tf.Tensor;
  absmax2?: tf.Tensor;
}

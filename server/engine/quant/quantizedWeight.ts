// The resident form of a QLoRA base weight: 4-bit codes packed eight per int32 and the
// block absmax values (or, with double quantization, their 8-bit codes and one float32
// per 256 blocks), held as tensors on the current backend; dequantized on demand by the
// Dequantize4bit kernel (kernels.ts). Quantization itself runs once, on the host
// (blockwise.ts), exactly as bitsandbytes' quantize_4bit with compress_statistics.
//
// Shapes: W is (out, in) row-major, as Hugging Face stores nn.Linear weights.
import { tf } from '../tf';
import type { HostTensor } from '../formats/types';
import type { NestedQuantMap } from './codebooks';
import { BLOCK_SIZE_RULE, FOUR_BIT_TYPES, isBlockSize, type QuantType } from './spec';
import { dequantize4bitReference, dequantizeAbsmaxReference, doubleQuantizeAbsmax, NESTED_BLOCK_SIZE, numBlocksOf, quantize4bit } from './blockwise';
import { dequantize4bit } from './kernels';
import type { Dequantize4bitAttrs, Dequantize4bitTensors } from './kernels';
import { pack4bit, pack8bit, packedLength4bit, packedLength8bit, unpack4bit, unpack8bit } from './pack';

export type { QuantType } from './spec';

export interface QuantOptions {
  quantType: QuantType;
  /** Values per absmax: spec.ts's BLOCK_SIZE_RULE. */
  blockSize: number;
  /** Store the absmax values as 8-bit codes in blocks of 256 (QLoRA's double quantization). */
  doubleQuant: boolean;
}

/** Everything but the arrays: JSON-serializable, enough to rebuild a weight from its saved data. */
export interface QuantState {
  quantType: QuantType;
  shape: [number, number];
  blockSize: number;
  doubleQuant: boolean;
  numBlocks: number;
  /** Double quantization only: mean of the absmax values, subtracted before their 8-bit coding. */
  offset?: number;
  nestedBlockSize?: number;
  nestedQuantMap?: NestedQuantMap;
}

/** The arrays of a quantized weight, as held on the backend (for saving, or rebuilding with fromQuantized). */
export interface QuantizedData {
  /** (ceil(n / 8),) eight 4-bit codes per word (pack.ts). */
  packed: Int32Array;
  /** (numBlocks,) without double quantization. */
  absmax?: Float32Array;
  /** (ceil(numBlocks / 4),) four 8-bit codes per word, with double quantization. */
  absmaxCodes?: Int32Array;
  /** (ceil(numBlocks / nestedBlockSize),) with double quantization. */
  absmax2?: Float32Array;
}

function checkOptions(shape: readonly number[], length: number, opts: QuantOptions): [number, number] {
  if (shape.length !== 2) throw new Error(`a quantized weight must be 2-D (out, in), got shape [${shape.join(', ')}]`);
  const [rows, cols] = shape;
  if (rows * cols !== length) throw new Error(`shape [${rows}, ${cols}] does not match ${length} values`);
  if (!(FOUR_BIT_TYPES as readonly string[]).includes(opts.quantType)) {
    throw new Error(`quantType must be ${FOUR_BIT_TYPES.join(' or ')}, got ${String(opts.quantType)}`);
  }
  if (!isBlockSize(opts.blockSize)) throw new Error(`blockSize must be ${BLOCK_SIZE_RULE} (a multiple of 8), got ${opts.blockSize}`);
  return [rows, cols];
}

/** Host-side quantization: W (out, in) -> packed arrays + state. */
export function quantizeWeight(w: HostTensor, opts: QuantOptions): { data: QuantizedData; state: QuantState } {
  const shape = checkOptions(w.shape, w.data.length, opts);
  const { quantType, blockSize, doubleQuant } = opts;
  const q = quantize4bit(w.data, { quantType, blockSize });
  const state: QuantState = { quantType, shape, blockSize, doubleQuant, numBlocks: q.absmax.length };
  const packed = pack4bit(q.codes);
  if (!doubleQuant) return { data: { packed, absmax: q.absmax }, state };
  const dq = doubleQuantizeAbsmax(q.absmax, NESTED_BLOCK_SIZE);
  Object.assign(state, { offset: dq.offset, nestedBlockSize: dq.nestedBlockSize, nestedQuantMap: 'dynamic' });
  return { data: { packed, absmaxCodes: pack8bit(dq.codes), absmax2: dq.absmax2 }, state };
}

/** Host-side dequantization by the reference implementations (no tensors): W (out, in). */
export function dequantizeWeightReference(data: QuantizedData, state: QuantState): Float32Array {
  const n = state.shape[0] * state.shape[1];
  let absmax = data.absmax;
  if (state.doubleQuant) {
    if (!data.absmaxCodes || !data.absmax2 || state.offset === undefined) throw new Error('double-quantized data lacks absmaxCodes, absmax2 or offset');
    absmax = dequantizeAbsmaxReference({
      codes: unpack8bit(data.absmaxCodes, state.numBlocks),
      absmax2: data.absmax2,
      offset: state.offset,
      nestedBlockSize: state.nestedBlockSize ?? NESTED_BLOCK_SIZE,
    });
  }
  if (!absmax) throw new Error('quantized data lacks absmax');
  return dequantize4bitReference({ codes: unpack4bit(data.packed, n), absmax }, state);
}

export class QuantizedWeight {
  readonly shape: [number, number];
  private readonly tensors: { packed: tf.Tensor1D; absmax?: tf.Tensor1D; absmaxCodes?: tf.Tensor1D; absmax2?: tf.Tensor1D };
  private readonly attrs: Dequantize4bitAttrs;
  private disposed = false;

  private constructor(readonly state: QuantState, data: QuantizedData) {
    this.shape = [state.shape[0], state.shape[1]];
    const n = this.shape[0] * this.shape[1];
    if (state.numBlocks !== numBlocksOf(n, state.blockSize)) throw new Error(`numBlocks ${state.numBlocks} does not match shape and blockSize`);
    if (data.packed.length !== packedLength4bit(n)) throw new Error(`packed holds ${data.packed.length} words, expected ${packedLength4bit(n)}`);
    const nestedBlockSize = state.nestedBlockSize ?? NESTED_BLOCK_SIZE;
    // tf.keep: a weight built inside a tf.tidy must outlive it.
    const upload = <T extends Int32Array | Float32Array>(a: T, length: number, what: string): tf.Tensor1D => {
      if (a.length !== length) throw new Error(`${what} holds ${a.length} values, expected ${length}`);
      return tf.keep(tf.tensor1d(a, a instanceof Int32Array ? 'int32' : 'float32'));
    };
    if (state.doubleQuant) {
      if (!data.absmaxCodes || !data.absmax2 || state.offset === undefined) throw new Error('double-quantized data lacks absmaxCodes, absmax2 or offset');
      this.tensors = {
        packed: upload(data.packed, packedLength4bit(n), 'packed'),
        absmaxCodes: upload(data.absmaxCodes, packedLength8bit(state.numBlocks), 'absmaxCodes'),
        absmax2: upload(data.absmax2, numBlocksOf(state.numBlocks, nestedBlockSize), 'absmax2'),
      };
    } else {
      if (!data.absmax) throw new Error('quantized data lacks absmax');
      this.tensors = { packed: upload(data.packed, packedLength4bit(n), 'packed'), absmax: upload(data.absmax, state.numBlocks, 'absmax') };
    }
    this.attrs = {
      quantType: state.quantType,
      blockSize: state.blockSize,
      shape: this.shape,
      transpose: false,
      doubleQuant: state.doubleQuant,
      offset: state.offset ?? 0,
      nestedBlockSize,
      nestedQuantMap: state.nestedQuantMap ?? 'dynamic',
    };
  }

  /** Quantizes W (out, in) on the host and uploads the packed form to the current backend. */
  static fromHost(w: HostTensor, opts: QuantOptions): QuantizedWeight {
    const { data, state } = quantizeWeight(w, opts);
    return new QuantizedWeight(state, data);
  }

  /** Rebuilds a weight from arrays and state saved earlier (toQuantized, or quantizeWeight). */
  static fromQuantized(data: QuantizedData, state: QuantState): QuantizedWeight {
    checkOptions(state.shape, state.shape[0] * state.shape[1], state);
    return new QuantizedWeight(state, data);
  }

  /** W (out, in) as float32, or W^T (in, out) with transpose, written in that layout by the kernel. */
  dequantize(opts: { transpose?: boolean } = {}): tf.Tensor2D {
    this.checkAlive();
    return dequantize4bit(this.tensors, { ...this.attrs, transpose: opts.transpose ?? false });
  }

  /**
   * The packed tensors and the Dequantize4bit attributes, for a kernel that dequantizes
   * inside its own native call (kernels/nativeLoraLinear.ts). Still owned by this weight.
   */
  kernelOperands(): { tensors: Dequantize4bitTensors; attrs: Dequantize4bitAttrs } {
    this.checkAlive();
    return { tensors: this.tensors, attrs: this.attrs };
  }

  /** W (out, in) on the host. */
  dequantizeToHost(): Float32Array {
    const w = this.dequantize();
    try {
      return new Float32Array(w.dataSync());
    } finally {
      w.dispose();
    }
  }

  /** The packed arrays, downloaded from the backend. */
  toQuantized(): QuantizedData {
    this.checkAlive();
    const { packed, absmax, absmaxCodes, absmax2 } = this.tensors;
    const data: QuantizedData = { packed: new Int32Array(packed.dataSync()) };
    if (absmax) data.absmax = new Float32Array(absmax.dataSync());
    if (absmaxCodes) data.absmaxCodes = new Int32Array(absmaxCodes.dataSync());
    if (absmax2) data.absmax2 = new Float32Array(absmax2.dataSync());
    return data;
  }

  /** Bytes of the tensors this weight holds on the backend (every one is 4 bytes an element). */
  residentBytes(): number {
    let bytes = 0;
    for (const t of this.heldTensors()) bytes += t.size * bytesPerElement(t.dtype);
    return bytes;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.heldTensors()) t.dispose();
  }

  private heldTensors(): tf.Tensor[] {
    const { packed, absmax, absmaxCodes, absmax2 } = this.tensors;
    return [packed, absmax, absmaxCodes, absmax2].filter((t): t is tf.Tensor1D => t !== undefined && !t.isDisposed);
  }

  private checkAlive(): void {
    if (this.disposed) throw new Error('QuantizedWeight used after dispose()');
  }
}

function bytesPerElement(dtype: tf.DataType): number {
  if (dtype === 'float32' || dtype === 'int32') return 4;
  if (dtype === 'bool') return 1;
  throw new Error(`no byte size for dtype ${dtype}`);
}

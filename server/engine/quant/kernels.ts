// The Dequantize4bit kernel: packed 4-bit codes (eight per int32) and per-block absmax ->
// float32 weight, written directly in the layout the caller's matMul needs. Registered for
// the cpu backend (host arrays) and the wasm backend (views on the wasm heap); both run
// the same tight loop, which replaces gather + multiply (on wasm here, 0.7 ms instead of
// 21 ms for a 1376x512 weight; DESIGN.md "Where speed comes from"). The webgpu backend
// runs one WGSL compute shader instead (../kernels/webgpuDequantize4bit.ts). On any other
// backend (tensorflow) the op takes the slow path: it downloads the packed tensors, runs
// the loop on the host and uploads the result.
//
// The op is never differentiated: the caller dequantizes a frozen weight inside its own
// tf.customGrad, so no gradient is registered.
//
// Shapes: W is (rows, cols) row-major = (out, in) of a linear layer; n = rows * cols;
// blocks of blockSize consecutive values of the flattened W.
import { tf } from '../tf';
import { levelsOf, nestedMapOf } from './codebooks';
import { dequantizeBlocksSimd } from '../kernels/wasmDequantize4bit';
import { DEQUANTIZE_4BIT, type Dequantize4bitArrays, type Dequantize4bitAttrs, type Dequantize4bitTensors } from './dequantizeOp';
import type { CpuBackendLike, WasmBackendLike } from '../kernels/backendLike';

export { DEQUANTIZE_4BIT, type Dequantize4bitArrays, type Dequantize4bitAttrs, type Dequantize4bitTensors } from './dequantizeOp';

/** The per-block absmax, decoded first when it is double-quantized (numBlocks values, then a loop over n). */
export function decodeAbsmax(arrays: Dequantize4bitArrays, attrs: Dequantize4bitAttrs): Float32Array {
  if (!attrs.doubleQuant) {
    if (!arrays.absmax) throw new Error('Dequantize4bit: absmax input missing');
    return arrays.absmax;
  }
  const { absmaxCodes, absmax2 } = arrays;
  if (!absmaxCodes || !absmax2) throw new Error('Dequantize4bit: absmaxCodes/absmax2 inputs missing for double quantization');
  const [rows, cols] = attrs.shape;
  const numBlocks = Math.ceil((rows * cols) / attrs.blockSize);
  const code = nestedMapOf(attrs.nestedQuantMap);
  const { offset, nestedBlockSize } = attrs;
  const absmax = new Float32Array(numBlocks);
  for (let b = 0; b < numBlocks; b++) {
    const c = (absmaxCodes[b >> 2] >>> ((b & 3) << 3)) & 255;
    // Two float32 roundings, as bitsandbytes: dequantize_blockwise, then += offset.
    absmax[b] = Math.fround(code[c] * absmax2[Math.floor(b / nestedBlockSize)]) + offset;
  }
  return absmax;
}

/**
 * out = W (rows, cols) or W^T (cols, rows); every element is fl(level * absmax), the value
 * dequantize4bitReference gives. Requires blockSize % 8 == 0, so that no int32 word of
 * codes straddles two blocks.
 */
export function dequantize4bitInto(out: Float32Array, arrays: Dequantize4bitArrays, attrs: Dequantize4bitAttrs): void {
  const [rows, cols] = attrs.shape;
  if (attrs.blockSize % 8 !== 0) throw new Error(`Dequantize4bit: blockSize must be a multiple of 8, got ${attrs.blockSize}`);
  if (out.length !== rows * cols) throw new Error(`Dequantize4bit: output holds ${out.length} values, W has ${rows * cols}`);
  const levels = levelsOf(attrs.quantType);
  const absmax = decodeAbsmax(arrays, attrs);
  if (!attrs.transpose) {
    // On the wasm heap, whole blocks take the SIMD loop (../kernels/wasmDequantize4bit.ts); the rest, and host arrays, this one.
    const done = dequantizeBlocksSimd(out, arrays.packed, absmax, levels, rows * cols, attrs.blockSize);
    writeRowMajor(out, arrays.packed, absmax, levels, rows * cols, attrs.blockSize, done / attrs.blockSize);
  }
  else if (cols % 8 === 0) writeTransposedTiled(out, arrays.packed, absmax, levels, rows, cols, attrs.blockSize);
  else writeTransposedAnyShape(out, arrays.packed, absmax, levels, rows, cols, attrs.blockSize);
}

/** Code j of an int32 word (pack.ts): the high nibble of byte j >> 1 for even j. */
function nibble(v: number, j: number): number {
  return (v >>> (((j >> 1) << 3) + ((j & 1) ^ 1) * 4)) & 15;
}

/** W in storage order from block `firstBlock` on: a table of the 16 levels scaled once per block, eight lookups per word. */
function writeRowMajor(out: Float32Array, packed: Int32Array, absmax: Float32Array, levels: Float32Array, n: number, blockSize: number, firstBlock = 0): void {
  const scaled = new Float32Array(16);
  const wordsPerBlock = blockSize >> 3;
  const fullWords = n >> 3;
  for (let b = firstBlock; b < absmax.length; b++) {
    const s = absmax[b];
    for (let k = 0; k < 16; k++) scaled[k] = levels[k] * s;
    const wEnd = Math.min(fullWords, (b + 1) * wordsPerBlock);
    for (let w = b * wordsPerBlock, o = w << 3; w < wEnd; w++, o += 8) {
      const v = packed[w];
      out[o] = scaled[(v >>> 4) & 15];
      out[o + 1] = scaled[v & 15];
      out[o + 2] = scaled[(v >>> 12) & 15];
      out[o + 3] = scaled[(v >>> 8) & 15];
      out[o + 4] = scaled[(v >>> 20) & 15];
      out[o + 5] = scaled[(v >>> 16) & 15];
      out[o + 6] = scaled[(v >>> 28) & 15];
      out[o + 7] = scaled[(v >>> 24) & 15];
    }
  }
  // A last word only partly filled (n % 8 values).
  for (let i = Math.max(fullWords << 3, firstBlock * blockSize); i < n; i++) out[i] = levels[nibble(packed[i >> 3], i & 7)] * absmax[Math.floor(i / blockSize)];
}

// Rows of W handled together in the transposed layout: TILE consecutive outputs per column
// of W^T fill a 64-byte cache line, instead of one scattered store per line. Power-of-two
// strides (rows = 1024, 4096) otherwise map every store of a row to the same cache set.
const TILE = 16;

/** W^T when every row of W is whole words (cols % 8 == 0): W is walked in tiles of TILE rows. */
function writeTransposedTiled(out: Float32Array, packed: Int32Array, absmax: Float32Array, levels: Float32Array, rows: number, cols: number, blockSize: number): void {
  const wordsPerRow = cols >> 3;
  const wordsPerBlock = blockSize >> 3;
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(rows, r0 + TILE);
    for (let wc = 0; wc < wordsPerRow; wc++) {
      for (let r = r0; r < r1; r++) {
        const w = r * wordsPerRow + wc;
        const v = packed[w];
        const s = absmax[Math.floor(w / wordsPerBlock)];
        const o = (wc << 3) * rows + r;
        out[o] = levels[(v >>> 4) & 15] * s;
        out[o + rows] = levels[v & 15] * s;
        out[o + 2 * rows] = levels[(v >>> 12) & 15] * s;
        out[o + 3 * rows] = levels[(v >>> 8) & 15] * s;
        out[o + 4 * rows] = levels[(v >>> 20) & 15] * s;
        out[o + 5 * rows] = levels[(v >>> 16) & 15] * s;
        out[o + 6 * rows] = levels[(v >>> 28) & 15] * s;
        out[o + 7 * rows] = levels[(v >>> 24) & 15] * s;
      }
    }
  }
}

/** W^T for any shape: element by element, W in storage order. */
function writeTransposedAnyShape(out: Float32Array, packed: Int32Array, absmax: Float32Array, levels: Float32Array, rows: number, cols: number, blockSize: number): void {
  for (let r = 0, i = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++, i++) out[c * rows + r] = levels[nibble(packed[i >> 3], i & 7)] * absmax[Math.floor(i / blockSize)];
  }
}

function outShapeOf(attrs: Dequantize4bitAttrs): [number, number] {
  const [rows, cols] = attrs.shape;
  return attrs.transpose ? [cols, rows] : [rows, cols];
}

function attrsOf(attrs: tf.NamedAttrMap | undefined): Dequantize4bitAttrs {
  if (!attrs) throw new Error('Dequantize4bit: attrs missing');
  return attrs as unknown as Dequantize4bitAttrs;
}

function arraysOf(inputs: tf.NamedTensorInfoMap, read: (info: tf.TensorInfo) => unknown): Dequantize4bitArrays {
  const view = <T>(name: string, type: { new (...args: never[]): T }): T | undefined => {
    const info = inputs[name];
    if (!info) return undefined;
    const values = read(info);
    if (!(values instanceof type)) throw new Error(`Dequantize4bit: input ${name} has the wrong dtype (${info.dtype})`);
    return values;
  };
  const packed = view('packed', Int32Array);
  if (!packed) throw new Error('Dequantize4bit: packed input missing');
  return {
    packed,
    absmax: view('absmax', Float32Array),
    absmaxCodes: view('absmaxCodes', Int32Array),
    absmax2: view('absmax2', Float32Array),
  };
}

const cpuKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const cpu = backend as CpuBackendLike;
  const a = attrsOf(attrs);
  const shape = outShapeOf(a);
  const out = new Float32Array(shape[0] * shape[1]);
  dequantize4bitInto(out, arraysOf(inputs, (info) => cpu.data.get(info.dataId).values), a);
  return cpu.makeTensorInfo(shape, 'float32', out);
};

const wasmKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as WasmBackendLike;
  const a = attrsOf(attrs);
  const output = wasm.makeOutput(outShapeOf(a), 'float32');
  // Views are taken after the output's allocation: growing the heap detaches older views.
  const arrays = arraysOf(inputs, (info) => wasm.typedArrayFromHeap(info));
  dequantize4bitInto(wasm.typedArrayFromHeap(output) as Float32Array, arrays, a);
  return output;
};

/**
 * Registers the cpu and wasm kernels where they are not yet registered; runs on import.
 * The webgpu kernel is registered by backend.ts when that backend starts.
 */
export function registerDequantizeKernels(): void {
  for (const [backendName, kernelFunc] of [['cpu', cpuKernel], ['wasm', wasmKernel]] as const) {
    if (!tf.getKernel(DEQUANTIZE_4BIT, backendName)) tf.registerKernel({ kernelName: DEQUANTIZE_4BIT, backendName, kernelFunc });
  }
}
registerDequantizeKernels();

/** Whether the current backend runs Dequantize4bit as a kernel (else dequantize4bit takes the host path). */
export function hasDequantizeKernel(): boolean {
  return tf.getKernel(DEQUANTIZE_4BIT, tf.getBackend()) !== undefined;
}

/**
 * W (rows, cols) or W^T as a float32 tensor on the current backend. Slow path where no
 * kernel is registered (tensorflow): download, dequantize on the host, upload.
 */
export function dequantize4bit(inputs: Dequantize4bitTensors, attrs: Dequantize4bitAttrs): tf.Tensor2D {
  const shape = outShapeOf(attrs);
  if (hasDequantizeKernel()) {
    const named: tf.NamedTensorMap = { packed: inputs.packed };
    if (inputs.absmax) named.absmax = inputs.absmax;
    if (inputs.absmaxCodes) named.absmaxCodes = inputs.absmaxCodes;
    if (inputs.absmax2) named.absmax2 = inputs.absmax2;
    return tf.engine().runKernel<tf.Tensor2D>(DEQUANTIZE_4BIT, named, attrs as unknown as tf.NamedAttrMap);
  }
  const download = <T>(t: tf.Tensor | undefined): T | undefined => (t ? (t.dataSync() as unknown as T) : undefined);
  const arrays: Dequantize4bitArrays = {
    packed: inputs.packed.dataSync() as Int32Array,
    absmax: download<Float32Array>(inputs.absmax),
    absmaxCodes: download<Int32Array>(inputs.absmaxCodes),
    absmax2: download<Float32Array>(inputs.absmax2),
  };
  const out = new Float32Array(shape[0] * shape[1]);
  dequantize4bitInto(out, arrays, attrs);
  return tf.tensor2d(out, shape);
}

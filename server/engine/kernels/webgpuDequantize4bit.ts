// The Dequantize4bit kernel for @tensorflow/tfjs-backend-webgpu: one WGSL compute shader
// that reads the packed 4-bit codes (eight per int32, layout of quant/pack.ts) and the
// block absmax (or its 8-bit codes, absmax2 and the offset under double quantization) and
// writes float32 W (rows, cols) or W^T (cols, rows). One invocation per output element, in
// output order, so that both layouts write memory contiguously; the packed word and the
// absmax each invocation reads are shared by its neighbours and stay in cache.
//
// Every element is fl(level * absmax) with absmax = fl(fl(code * absmax2) + offset), the
// values dequantize4bitReference gives (quant/blockwise.ts). WGSL rounds f32 products and
// sums correctly, but a driver may fuse `code * absmax2 + offset` into one fused
// multiply-add (one rounding instead of two): the product passes through an XOR with a
// uniform zero, which no compiler can see through.
//
// Shapes: W is (rows, cols) row-major = (out, in) of a linear layer; n = rows * cols.
import { tf } from '../tf';
import { levelsOf, nestedMapOf } from '../quant/codebooks';
import { DEQUANTIZE_4BIT, type Dequantize4bitAttrs } from '../quant/dequantizeOp';

/** What tfjs-backend-webgpu 4.22 compiles and runs (its WebGPUProgram, the fields used here). */
interface WebGpuProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  size: boolean;
  uniforms: string;
  getUserCode(): string;
}
type ProgramUniform = Array<{ type: 'int32' | 'uint32' | 'float32'; data: number[] }>;
interface WebGpuBackendLike {
  runWebGPUProgram(program: WebGpuProgram, inputs: tf.TensorInfo[], outputDtype: tf.DataType, uniforms?: ProgramUniform): tf.TensorInfo;
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: Float32Array): tf.TensorInfo;
  disposeData(dataId: tf.DataId): boolean;
}

const WORKGROUP_SIZE = 256;

/** The WGSL body; tfjs-backend-webgpu adds the bindings (`result`, one array per input), `uniforms` and `main`'s caller. */
function userCode(transpose: boolean, doubleQuant: boolean): string {
  const absmaxOf = doubleQuant
    ? `fn absmaxOf(b : i32) -> f32 {
        let code = (u32(absmaxCodes[b >> 2u]) >> (u32(b & 3) * 8u)) & 255u;
        let product = nestedMap[code] * absmax2[b / uniforms.nestedBlockSize];
        let rounded = bitcast<f32>(bitcast<u32>(product) ^ uniforms.opaqueZero);
        return rounded + uniforms.offset;
      }`
    : `fn absmaxOf(b : i32) -> f32 {
        return absmax[b];
      }`;
  // i: the element's index in W's storage order.
  const sourceIndex = transpose
    ? `let c = index / uniforms.rows;
        let i = (index - c * uniforms.rows) * uniforms.cols + c;`
    : 'let i = index;';
  return `
      ${absmaxOf}

      fn main(index : i32) {
        if (index < uniforms.size) {
          ${sourceIndex}
          let j = u32(i & 7);
          let shift = ((j >> 1u) << 3u) + ((j & 1u) ^ 1u) * 4u;
          let code = (u32(codes[i >> 3u]) >> shift) & 15u;
          result[index] = levels[code] * absmaxOf(i / uniforms.blockSize);
        }
      }`;
}

function program(attrs: Dequantize4bitAttrs, variableNames: string[]): WebGpuProgram {
  const [rows, cols] = attrs.shape;
  const n = rows * cols;
  const layout = `${attrs.transpose ? 'T' : 'N'}${attrs.doubleQuant ? 'dq' : ''}`;
  return {
    variableNames,
    outputShape: attrs.transpose ? [cols, rows] : [rows, cols],
    shaderKey: `dequantize4bit_${layout}`,
    dispatchLayout: { x: [0, 1] },
    // The backend splits x over y and z where it passes maxComputeWorkgroupsPerDimension.
    dispatch: [Math.ceil(n / WORKGROUP_SIZE), 1, 1],
    workgroupSize: [WORKGROUP_SIZE, 1, 1],
    size: true,
    uniforms: 'rows : i32, cols : i32, blockSize : i32, nestedBlockSize : i32, offset : f32, opaqueZero : u32,',
    getUserCode: () => userCode(attrs.transpose, attrs.doubleQuant),
  };
}

export const webgpuDequantize4bitKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const gpu = backend as unknown as WebGpuBackendLike;
  const a = attrs as unknown as Dequantize4bitAttrs | undefined;
  if (!a) throw new Error('Dequantize4bit: attrs missing');
  const input = (name: string): tf.TensorInfo => {
    const t = inputs[name];
    if (!t) throw new Error(`Dequantize4bit: input ${name} missing`);
    return t;
  };
  // The code tables travel as small inputs of their own (copies: the backend keeps the
  // array it is given), freed once the dispatch is recorded.
  const levels = gpu.makeTensorInfo([16], 'float32', levelsOf(a.quantType).slice());
  const temps = [levels];
  let names: string[], tensors: tf.TensorInfo[];
  if (a.doubleQuant) {
    const nestedMap = gpu.makeTensorInfo([256], 'float32', nestedMapOf(a.nestedQuantMap).slice());
    temps.push(nestedMap);
    names = ['codes', 'absmaxCodes', 'absmax2', 'levels', 'nestedMap'];
    tensors = [input('packed'), input('absmaxCodes'), input('absmax2'), levels, nestedMap];
  } else {
    names = ['codes', 'absmax', 'levels'];
    tensors = [input('packed'), input('absmax'), levels];
  }
  const [rows, cols] = a.shape;
  const uniforms: ProgramUniform = [
    { type: 'int32', data: [rows] }, { type: 'int32', data: [cols] }, { type: 'int32', data: [a.blockSize] },
    { type: 'int32', data: [a.doubleQuant ? a.nestedBlockSize : 1] }, { type: 'float32', data: [a.doubleQuant ? a.offset : 0] },
    { type: 'uint32', data: [0] },
  ];
  try {
    return gpu.runWebGPUProgram(program(a, names), tensors, 'float32', uniforms);
  } finally {
    for (const t of temps) gpu.disposeData(t.dataId);
  }
};

/** Registers the kernel for the webgpu backend (once; backend.ts calls it as that backend starts). */
export function registerWebgpuDequantize4bit(): void {
  if (!tf.getKernel(DEQUANTIZE_4BIT, 'webgpu')) {
    tf.registerKernel({ kernelName: DEQUANTIZE_4BIT, backendName: 'webgpu', kernelFunc: webgpuDequantize4bitKernel });
  }
}

// A frozen projection and its LoRA adapter as one native call each way, on the wasm
// backend where the native provider runs (native/ortProvider.ts):
//   forward   hs = s x A^T (N, r),  y = x W^T + hs B^T
//   backward  gs = s dy B (N, r),   dx = dy W + gs A,  dA = gs^T x,  dB = dy^T hs
//             (dA and dB alone where x needs no gradient: LORA_ADAPTER_GRAD)
// Apart, the rank-r products are six small tfjs kernels plus a scale, an add and their
// gradients' adds, each with its own output, bookkeeping and native call; they were about
// a third of the step's matrix time on the benchmark shape. Here they are one ORT graph
// each way, whose small products run inside the same session as the big one and whose
// sums are taken by Gemm's C input instead of an add over (N, out).
//
// W comes in storage order (out, in) from a quantized store, or as W^T (in, out) from a
// dense one (attr wt = 1); the graph takes either transpose in MLAS's packing.
//
// With dropout on the adapter's input (attr drop = 1) the adapter reads xd = dropout(x),
// an input of its own, and the backward pass returns the two gradients apart, dx = dy W
// for x and dxd = gs A for xd (dA = gs^T xd), for autograd to take the latter through
// the dropout and add them.
//
// A 4-bit weight's forward product can skip the float W on the wasm heap altogether
// (LORA_LINEAR_4BIT): ORT's MatMulBnb4 (com.microsoft) reads the packed codes as they are
// stored here (bitsandbytes' layout: two codes a byte, the even index in the high nibble)
// and dequantizes inside its native call, to the same float32 values as Dequantize4bit
// (codebook level times block absmax, one rounding; checked bit for bit in the tests).
// Its transB = 0 form, which dx = dy W would need, does not give correct results in ORT
// 1.30, so the backward pass still dequantizes with Dequantize4bit. Dequantize4bit + the
// plain forward graph instead was measured too: 5-8% less step time on the benchmark
// shape, but SmolLM2-135M's wasm heap high-water rose 0.45 -> 0.54 GB (a float W per
// forward product on the heap, between the activations); memory is what stops real
// models here, so MatMulBnb4 stays.
import { tf } from '../tf';
import { activeNativeProvider } from './nativeBatchMatMul';
import { FLOAT, UINT8, type GraphSpec, type NodeSpec, fusedMatMul } from './native/onnxGraph';
import { registerGraphKernel } from './native/graphKernel';
import { decodeAbsmax, type Dequantize4bitArrays, type Dequantize4bitAttrs } from '../quant/kernels';
import type { WasmBackendLike } from './backendLike';

export const LORA_LINEAR = 'QloraLoraLinear';
export const LORA_LINEAR_4BIT = 'QloraLoraLinear4bit';
export const LORA_LINEAR_GRAD = 'QloraLoraLinearGrad';
export const LORA_ADAPTER_GRAD = 'QloraLoraAdapterGrad';

interface Attrs { scaling: number; wt: number; drop: number }

/** y = a b^T + c (Gemm's C input accumulates in place of an Add). */
const gemmAddBt = (a: string, b: string, c: string, y: string): NodeSpec => ({
  opType: 'Gemm', inputs: [a, b, c], outputs: [y], attrs: [{ name: 'transB', i: 1 }],
});
const gemmAdd = (a: string, b: string, c: string, y: string): NodeSpec => ({ opType: 'Gemm', inputs: [a, b, c], outputs: [y] });
const v = (name: string, d0: string, d1: string) => ({ name, elemType: FLOAT, dims: [d0, d1] });

function forwardGraph({ scaling, wt, drop }: Attrs): GraphSpec {
  return {
    nodes: [
      fusedMatMul(drop ? 'xd' : 'x', 'a', 'hs', { alpha: scaling, transB: true }),
      fusedMatMul('x', 'w', 'base', { transB: !wt }),
      gemmAddBt('hs', 'b', 'base', 'y'),
    ],
    inputs: [v('x', 'n', 'i'), wt ? v('w', 'i', 'o') : v('w', 'o', 'i'), v('a', 'r', 'i'), v('b', 'o', 'r'), ...(drop ? [v('xd', 'n', 'i')] : [])],
    outputs: [v('y', 'n', 'o'), v('hs', 'n', 'r')],
  };
}

/** x is the adapter's input: xd under dropout (then dx and dxd come out apart). */
function backwardGraph({ scaling, wt, drop }: Attrs): GraphSpec {
  return {
    nodes: [
      fusedMatMul('dy', 'b', 'gs', { alpha: scaling }),
      ...(drop
        ? [fusedMatMul('dy', 'w', 'dx', { transB: !!wt }), fusedMatMul('gs', 'a', 'dxd')]
        : [fusedMatMul('dy', 'w', 'base', { transB: !!wt }), gemmAdd('gs', 'a', 'base', 'dx')]),
      fusedMatMul('gs', 'x', 'da', { transA: true }),
      fusedMatMul('dy', 'hs', 'db', { transA: true }),
    ],
    inputs: [v('dy', 'n', 'o'), wt ? v('w', 'i', 'o') : v('w', 'o', 'i'), v('a', 'r', 'i'), v('b', 'o', 'r'), v('x', 'n', 'i'), v('hs', 'n', 'r')],
    outputs: [v('dx', 'n', 'i'), ...(drop ? [v('dxd', 'n', 'i')] : []), v('da', 'r', 'i'), v('db', 'o', 'r')],
  };
}

/**
 * The backward pass where x needs no gradient (it depends on no trainable weight: the
 * first block's input, the frozen embeddings): dA and dB only, so neither dy W nor the
 * dequantized W at all. PyTorch's autograd skips the same product for such inputs.
 */
function adapterGradGraph({ scaling }: Attrs): GraphSpec {
  return {
    nodes: [
      fusedMatMul('dy', 'b', 'gs', { alpha: scaling }),
      fusedMatMul('gs', 'x', 'da', { transA: true }),
      fusedMatMul('dy', 'hs', 'db', { transA: true }),
    ],
    inputs: [v('dy', 'n', 'o'), v('b', 'o', 'r'), v('x', 'n', 'i'), v('hs', 'n', 'r')],
    outputs: [v('da', 'r', 'i'), v('db', 'o', 'r')],
  };
}

type Shapes = Record<string, number[]>;

/** Checks the operands agree (a wrong adapter shape would otherwise read past a buffer in native code). */
function dims(name: string, s: Shapes, wt: number): { n: number; i: number; o: number; r: number } {
  const [n, i] = s.x, [r, ia] = s.a, [o, rb] = s.b;
  const [wo, wi] = wt ? [s.w[1], s.w[0]] : s.w;
  if (s.x.length !== 2 || ia !== i || wi !== i || wo !== o || rb !== r) {
    throw new Error(`${name}: shapes disagree: x [${s.x}], w [${s.w}]${wt ? '^T' : ''}, A [${s.a}], B [${s.b}]`);
  }
  return { n, i, o, r };
}

function register(name: string, inputsOf: (a: Attrs) => string[], outShapes: (s: Shapes, a: Attrs) => number[][],
  outputsOf: (a: Attrs) => string[], graph: (a: Attrs) => GraphSpec): void {
  registerGraphKernel({
    name, guard: 'loraLinearRuns()',
    inputs: (a) => inputsOf(a as unknown as Attrs), outputs: (a) => outputsOf(a as unknown as Attrs),
    plan: (shapes, a) => {
      const attrs = a as unknown as Attrs;
      return { outShapes: outShapes(shapes, attrs), key: `${name}:${attrs.scaling}:${attrs.wt}:${attrs.drop}`, graph: () => graph(attrs) };
    },
  });
}

register(LORA_LINEAR, (a) => ['x', 'w', 'a', 'b', ...(a.drop ? ['xd'] : [])], (s, a) => {
  const { n, o, r } = dims(LORA_LINEAR, s, a.wt);
  if (a.drop && (s.xd[0] !== s.x[0] || s.xd[1] !== s.x[1])) throw new Error(`${LORA_LINEAR}: xd [${s.xd}] differs from x [${s.x}]`);
  return [[n, o], [n, r]];
}, () => ['y', 'hs'], forwardGraph);

register(LORA_LINEAR_GRAD, () => ['dy', 'w', 'a', 'b', 'x', 'hs'], (s, a) => {
  const { n, i, o, r } = dims(LORA_LINEAR_GRAD, s, a.wt);
  if (s.dy[0] !== n || s.dy[1] !== o || s.hs[0] !== n || s.hs[1] !== r) throw new Error(`${LORA_LINEAR_GRAD}: dy [${s.dy}] or hs [${s.hs}] disagree with x [${s.x}]`);
  return [[n, i], ...(a.drop ? [[n, i]] : []), [r, i], [o, r]];
}, (a) => ['dx', ...(a.drop ? ['dxd'] : []), 'da', 'db'], backwardGraph);

register(LORA_ADAPTER_GRAD, () => ['dy', 'b', 'x', 'hs'], (s) => {
  const [n, i] = s.x, [o, r] = s.b;
  if (s.x.length !== 2 || s.dy[0] !== n || s.dy[1] !== o || s.hs[0] !== n || s.hs[1] !== r) {
    throw new Error(`${LORA_ADAPTER_GRAD}: shapes disagree: dy [${s.dy}], B [${s.b}], x [${s.x}], hs [${s.hs}]`);
  }
  return [[r, i], [o, r]];
}, () => ['da', 'db'], adapterGradGraph);

/** The forward graph with W given as packed 4-bit codes and block absmax (MatMulBnb4). */
function forward4bitGraph(scaling: number, drop: number, q: Dequantize4bitAttrs): GraphSpec {
  const [out, inp] = q.shape;
  return {
    nodes: [
      fusedMatMul(drop ? 'xd' : 'x', 'a', 'hs', { alpha: scaling, transB: true }),
      { opType: 'MatMulBnb4', domain: 'com.microsoft', inputs: ['x', 'codes', 'absmax'], outputs: ['base'],
        attrs: [{ name: 'K', i: inp }, { name: 'N', i: out }, { name: 'block_size', i: q.blockSize },
          { name: 'quant_type', i: q.quantType === 'nf4' ? 1 : 0 }, { name: 'transB', i: 1 }] },
      gemmAddBt('hs', 'b', 'base', 'y'),
    ],
    inputs: [v('x', 'n', 'i'), { name: 'codes', elemType: UINT8, dims: ['bytes'] }, { name: 'absmax', elemType: FLOAT, dims: ['blocks'] },
      v('a', 'r', 'i'), v('b', 'o', 'r'), ...(drop ? [v('xd', 'n', 'i')] : [])],
    outputs: [v('y', 'n', 'o'), v('hs', 'n', 'r')],
  };
}

/** Whether MatMulBnb4 can take this weight: whole bytes of codes (it reads (n + 1) / 2 of them). */
export function fourBitForwardRuns(q: Dequantize4bitAttrs): boolean {
  return (q.quantType === 'nf4' || q.quantType === 'fp4') && (q.shape[0] * q.shape[1]) % 2 === 0;
}

if (!tf.getKernel(LORA_LINEAR_4BIT, 'wasm')) {
  tf.registerKernel({
    kernelName: LORA_LINEAR_4BIT,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const p = activeNativeProvider();
      if (!p) throw new Error(`${LORA_LINEAR_4BIT}: the native provider is not running (callers check loraLinearRuns())`);
      const { scaling, drop, ...q } = args.attrs as unknown as Dequantize4bitAttrs & { scaling: number; drop: number };
      const info = (n: string) => args.inputs[n] as tf.TensorInfo | undefined;
      const x = info('x')!, a = info('a')!, b = info('b')!, xd = drop ? info('xd')! : undefined;
      if (xd && (xd.shape[0] !== x.shape[0] || xd.shape[1] !== x.shape[1])) throw new Error(`${LORA_LINEAR_4BIT}: xd [${xd.shape}] differs from x [${x.shape}]`);
      const [out, inp] = q.shape;
      dims(LORA_LINEAR_4BIT, { x: x.shape, a: a.shape, b: b.shape, w: [out, inp] }, 0);
      const [n, r] = [x.shape[0], a.shape[0]];
      const wasm = args.backend as unknown as WasmBackendLike;
      const y = wasm.makeOutput([n, out], 'float32'), hs = wasm.makeOutput([n, r], 'float32');
      // Views after every allocation: growing the heap detaches older views.
      const heap = (t: tf.TensorInfo | undefined) => (t ? wasm.typedArrayFromHeap(t) : undefined);
      const arrays = { packed: heap(info('packed')), absmax: heap(info('absmax')), absmaxCodes: heap(info('absmaxCodes')),
        absmax2: heap(info('absmax2')) } as Dequantize4bitArrays;
      // Decoded here on every call (numBlocks values, 1/64 of W): a kept copy would cost memory.
      const absmax = decodeAbsmax(arrays, q);
      const codes = new Uint8Array(arrays.packed.buffer, arrays.packed.byteOffset, (out * inp + 1) >> 1);
      const f32 = (t: tf.TensorInfo) => wasm.typedArrayFromHeap(t) as Float32Array;
      const feeds: Record<string, [Float32Array | Uint8Array, number[]]> = { x: [f32(x), x.shape], codes: [codes, [codes.length]],
        absmax: [absmax, [absmax.length]], a: [f32(a), a.shape], b: [f32(b), b.shape] };
      if (xd) feeds.xd = [f32(xd), xd.shape];
      p.runGraph(`${LORA_LINEAR_4BIT}:${scaling}:${drop}:${q.quantType}:${q.blockSize}:${out}x${inp}`, () => forward4bitGraph(scaling, drop, q), feeds,
        { y: [f32(y), [n, out]], hs: [f32(hs), [n, r]] });
      return [y, hs];
    },
  });
}

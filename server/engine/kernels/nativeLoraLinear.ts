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
// A 4-bit weight comes dequantized by Dequantize4bit (the SIMD loop, into a transient
// tensor) both ways. ORT's MatMulBnb4 (com.microsoft) reads this project's packing too and
// ran the forward product on the packed codes, with no float W on the wasm heap; but it
// dequantizes all of W again inside each call, and with it the training step took 5-8%
// more CPU and wall time on the benchmark shape (interleaved rounds, the same loss to the
// bit); its transB = 0 form, which dx = dy W would need, gave wrong results in ORT 1.30.
import { FLOAT, type GraphSpec, type NodeSpec, fusedMatMul } from './native/onnxGraph';
import { registerGraphKernel } from './native/graphKernel';

export const LORA_LINEAR = 'QloraLoraLinear';
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

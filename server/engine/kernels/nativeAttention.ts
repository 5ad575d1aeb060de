// Scaled dot-product attention as one native call each way, on the wasm backend where the
// native provider runs (native/ortProvider.ts). Shape legend: B batch, h heads, T time,
// hs head size; the mask is additive, (T, T) or (B, 1, T, T) (layers.attentionMask).
//   forward   S = scale q k^T + mask,  P = softmax(S),  o = P v
//   backward  P again from q, k and the mask (as FlashAttention's backward does), then
//             dv = P^T do,  dP = do v^T,  dS = P (dP - rowsum(dP P)),
//             dq = scale dS k,  dk = scale dS^T q
// As separate kernels (two products, the fused softmax, and five kernels backward) every
// (B, h, T, T) intermediate, scores, probabilities and their gradients, was an output of
// its own: onnxruntime-node copies each output of a call into a fresh buffer, and those
// copies (page faults, then garbage for the collector) cost more than the arithmetic. In
// one graph the intermediates stay in ORT's arena, and only (B, h, T, hs) tensors come
// out. Recomputing P costs one q k^T product and a softmax (a few per cent of the step's
// products); keeping it would cost a (B, h, T, T) output forward and a saved tensor.
import { registerGraphKernel } from './native/graphKernel';
import { FLOAT, type GraphSpec, type NodeSpec, type ValueInfo, fusedMatMul } from './native/onnxGraph';

export const ATTENTION = 'QloraAttention';
export const ATTENTION_GRAD = 'QloraAttentionGrad';

const heads = (name: string): ValueInfo => ({ name, elemType: FLOAT, dims: ['b', 'h', 't', 'd'] });
const maskInfo = (rank: number): ValueInfo => ({ name: 'mask', elemType: FLOAT, dims: rank === 2 ? ['t', 't'] : ['mb', 'one', 't', 't'] });

/** P = softmax(scale q k^T + mask), the first nodes of both graphs. */
const probabilities = (scale: number): NodeSpec[] => [
  fusedMatMul('q', 'k', 's', { alpha: scale, transB: true }),
  { opType: 'Add', inputs: ['s', 'mask'], outputs: ['u'] },
  { opType: 'Softmax', inputs: ['u'], outputs: ['p'], attrs: [{ name: 'axis', i: 3 }] },
];

function forwardGraph(scale: number, maskRank: number): GraphSpec {
  return {
    nodes: [...probabilities(scale), fusedMatMul('p', 'v', 'o')],
    inputs: [heads('q'), heads('k'), heads('v'), maskInfo(maskRank)],
    outputs: [heads('o')],
  };
}

// rowsum as ReduceMean times the row length: ReduceSum takes its axes as an input from
// opset 13, ReduceMean as an attribute until opset 18 (onnxGraph writes opset 17).
function backwardGraph(scale: number, maskRank: number): GraphSpec {
  return {
    nodes: [
      ...probabilities(scale),
      fusedMatMul('p', 'dy', 'dv', { transA: true }),
      fusedMatMul('dy', 'v', 'dp', { transB: true }),
      { opType: 'Mul', inputs: ['dp', 'p'], outputs: ['t'] },
      { opType: 'ReduceMean', inputs: ['t'], outputs: ['m'], attrs: [{ name: 'axes', ints: [3] }, { name: 'keepdims', i: 1 }] },
      { opType: 'Mul', inputs: ['m', 'len'], outputs: ['rowsum'] },
      { opType: 'Sub', inputs: ['dp', 'rowsum'], outputs: ['e'] },
      { opType: 'Mul', inputs: ['p', 'e'], outputs: ['ds'] },
      fusedMatMul('ds', 'k', 'dq', { alpha: scale }),
      fusedMatMul('ds', 'q', 'dk', { alpha: scale, transA: true }),
    ],
    inputs: [heads('dy'), heads('q'), heads('k'), heads('v'), maskInfo(maskRank), { name: 'len', elemType: FLOAT, dims: [] }],
    outputs: [heads('dq'), heads('dk'), heads('dv')],
  };
}

/** Whether q, k, v (and dy) share one (B, h, T, hs) shape and the mask is (T, T) or (B, 1, T, T): a training pass, not a decoding step against a KV cache. */
export function selfAttentionShapesFit(shapes: Record<string, readonly number[]>): boolean {
  const s = shapes.q;
  const same = (t: readonly number[]) => t.length === 4 && t.every((d, i) => d === s[i]);
  const m = shapes.mask, T = s[2];
  const maskFits = m.length === 2 ? m[0] === T && m[1] === T : m.length === 4 && m[0] === s[0] && m[1] === 1 && m[2] === T && m[3] === T;
  return ['q', 'k', 'v', ...('dy' in shapes ? ['dy'] : [])].every((n) => same(shapes[n])) && maskFits;
}

/** The (B, h, T, hs) shape, or an error where the shapes disagree (a mismatch would read past a buffer in native code). */
function check(name: string, shapes: Record<string, readonly number[]>): number[] {
  if (!selfAttentionShapesFit(shapes)) {
    throw new Error(`${name}: shapes disagree: ${Object.entries(shapes).map(([n, d]) => `${n} [${d}]`).join(', ')}`);
  }
  return [...shapes.q];
}

function register(name: string, inputs: string[], outputs: string[], graph: (scale: number, maskRank: number) => GraphSpec): void {
  registerGraphKernel({
    name, guard: 'attentionRunsNative()', inputs: () => inputs, outputs: () => outputs,
    plan: (shapes, { scale }) => {
      const shape = check(name, shapes);
      const maskRank = shapes.mask.length;
      return {
        outShapes: outputs.map(() => shape), key: `${name}:${scale}:${maskRank}`, graph: () => graph(scale, maskRank),
        ...(outputs.length > 1 ? { constants: { len: [new Float32Array([shape[2]]), []] } } : {}),
      };
    },
  });
}

register(ATTENTION, ['q', 'k', 'v', 'mask'], ['o'], forwardGraph);
register(ATTENTION_GRAD, ['dy', 'q', 'k', 'v', 'mask'], ['dq', 'dk', 'dv'], backwardGraph);

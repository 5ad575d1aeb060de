// One vocabulary chunk of the fused head + cross-entropy (model/chunkedLoss.ts) as one
// native call each way, on the wasm backend where the native provider runs
// (native/ortProvider.ts). Legend: n rows, C hidden size, v rows of the head in the chunk.
//   forward   z = W_c h^T (v, n),  m' = max(m, max_j z),  s' = s exp(m - m') + sum_j exp(z - m')
//   backward  p = exp(W_c h^T - lse) * coef (v, n),  dh' = dh + p^T W_c
// As tfjs kernels a chunk was a product, a transpose of h, then max, subtract, exp and sum
// over (v, n) on one thread of wasm, and the same again backward with a transpose of p:
// with a real vocabulary (49152 to 151936 rows) that is tens of millions of exps a step.
// In one graph the (v, n) scores never leave ORT's arena, the exps are vectorized and
// threaded, and no transpose is written out (the products take them).
import { registerGraphKernel } from './native/graphKernel';
import { FLOAT, INT64, type GraphSpec, type NodeSpec, type ValueInfo, fusedMatMul } from './native/onnxGraph';

export const LSE_CHUNK = 'QloraLseChunk';
export const LSE_CHUNK_GRAD = 'QloraLseChunkGrad';

const v2 = (name: string, d0: string | number, d1: string | number): ValueInfo => ({ name, elemType: FLOAT, dims: [d0, d1] });
/** z = W_c h^T (v, n): the transpose taken in the product. */
const scores: NodeSpec = fusedMatMul('w', 'h', 'z', { transB: true });

function forwardGraph(): GraphSpec {
  return {
    nodes: [
      scores,
      { opType: 'ReduceMax', inputs: ['z'], outputs: ['zmax'], attrs: [{ name: 'axes', ints: [0] }, { name: 'keepdims', i: 1 }] },
      { opType: 'Max', inputs: ['m', 'zmax'], outputs: ['m2'] },
      { opType: 'Sub', inputs: ['z', 'm2'], outputs: ['zc'] },
      { opType: 'Exp', inputs: ['zc'], outputs: ['e'] },
      { opType: 'ReduceSum', inputs: ['e', 'axis0'], outputs: ['es'], attrs: [{ name: 'keepdims', i: 1 }] },
      { opType: 'Sub', inputs: ['m', 'm2'], outputs: ['dm'] },
      { opType: 'Exp', inputs: ['dm'], outputs: ['decay'] },
      { opType: 'Mul', inputs: ['s', 'decay'], outputs: ['sd'] },
      { opType: 'Add', inputs: ['sd', 'es'], outputs: ['s2'] },
    ],
    inputs: [v2('h', 'n', 'c'), v2('w', 'v', 'c'), v2('m', 1, 'n'), v2('s', 1, 'n'), { name: 'axis0', elemType: INT64, dims: [1] }],
    outputs: [v2('m2', 1, 'n'), v2('s2', 1, 'n')],
  };
}

function backwardGraph(): GraphSpec {
  return {
    nodes: [
      scores,
      { opType: 'Sub', inputs: ['z', 'lse'], outputs: ['zc'] },
      { opType: 'Exp', inputs: ['zc'], outputs: ['e'] },
      { opType: 'Mul', inputs: ['e', 'coef'], outputs: ['p'] },
      { opType: 'Gemm', inputs: ['p', 'w', 'dh'], outputs: ['dh2'], attrs: [{ name: 'transA', i: 1 }] }, // p^T W_c + dh
    ],
    inputs: [v2('h', 'n', 'c'), v2('w', 'v', 'c'), v2('lse', 1, 'n'), v2('coef', 1, 'n'), v2('dh', 'n', 'c')],
    outputs: [v2('dh2', 'n', 'c')],
  };
}

const AXIS0 = BigInt64Array.of(0n);

/** Checks the operands agree (a mismatch would read past a buffer in native code). */
function check(name: string, s: Record<string, readonly number[]>): [number, number] {
  const [n, c] = s.h;
  const row = (t: readonly number[]) => t.length === 2 && t[0] === 1 && t[1] === n;
  const rows = name === LSE_CHUNK ? [s.m, s.s] : [s.lse, s.coef];
  if (s.h.length !== 2 || s.w.length !== 2 || s.w[1] !== c || !rows.every(row) || (s.dh && (s.dh[0] !== n || s.dh[1] !== c))) {
    throw new Error(`${name}: shapes disagree: ${Object.entries(s).map(([k, d]) => `${k} [${d}]`).join(', ')}`);
  }
  return [n, c];
}

function register(name: string, inputs: string[], outputs: string[], outShape: (n: number, c: number) => number[], graph: () => GraphSpec): void {
  registerGraphKernel({
    name, guard: 'lseChunkRunsNative()', inputs: () => inputs, outputs: () => outputs,
    plan: (shapes) => {
      const [n, c] = check(name, shapes);
      return { outShapes: outputs.map(() => outShape(n, c)), key: name, graph, ...(name === LSE_CHUNK ? { constants: { axis0: [AXIS0, [1]] } } : {}) };
    },
  });
}

register(LSE_CHUNK, ['h', 'w', 'm', 's'], ['m2', 's2'], (n) => [1, n], forwardGraph);
register(LSE_CHUNK_GRAD, ['h', 'w', 'lse', 'coef', 'dh'], ['dh2'], (n, c) => [n, c], backwardGraph);

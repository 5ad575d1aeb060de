// The native CPU provider: matrix products run by onnxruntime's MLAS through the
// synchronous native binding of `onnxruntime-node`.
//
// Why ORT and not our own N-API addon over OpenBLAS (both measured in issue 13): the two
// tie within noise on speed (MLAS 175-183 GFLOP/s per core, OpenBLAS SkylakeX ~200,
// OpenBLAS Haswell ~105, tfjs-wasm 37), but `onnxruntime-node` ships prebuilt CPU
// binaries inside its npm tarball for Linux and Windows (x64, arm64) and Apple Silicon,
// so `npm ci` needs no compiler and no system BLAS, and its speed does not depend on the
// user's BLAS build. Its public `InferenceSession.run()` is asynchronous, which a tfjs
// kernel cannot await; the binding underneath has a synchronous `run` (about 7 us per
// call) that writes into output buffers we pass, so kernels hand it views on the wasm
// heap and nothing is copied on the way in; its copy of every output on the way out is
// skipped where start-up finds that possible (skipOutputCopies.ts).
//
// One session per op kind (rank and transposes), with symbolic dimensions, so a session
// serves every shape. Intra-op threads = cores; thread spinning is off: with it on, a
// training step on a loaded machine took 6-7 s instead of tenths of a second, because
// idle pool threads spin against the main thread's JavaScript.
//
// Optional in every way: the package may be absent (it is an optionalDependency), fail
// to load (an unsupported platform), or fail the start-up self-test; `start()` then
// reports why and the engine keeps its wasm kernels. QLORA_NATIVE=0 turns it off.
import { availableParallelism } from 'node:os';
import { encodeModel, FLOAT, fusedMatMul, type GraphSpec } from './onnxGraph';
import { primeMalloc } from './mallocPrimer';
import type { OrtBinding, OrtSession, OrtTensorCtor } from './ortBinding';
import { probeSkipCopies, runSkippingCopies, SKIP_COPIES_MIN_BYTES, withSkipCopiesOutput } from './skipOutputCopies';
export type { GraphSpec } from './onnxGraph';

export interface NativeProvider {
  /** In words, for the backend report: "ORT MLAS, 2 threads". */
  readonly label: string;
  readonly threads: number;
  /** Intra-op threads from now on (sessions are kept per thread count). */
  setThreads(n: number): void;
  /**
   * out = op(a) @ op(b) with numpy-style broadcasting over the batch dimensions, op = the
   * transpose of the last two axes where asked. `out` must hold the broadcast result.
   */
  matMul(a: Float32Array, aShape: readonly number[], b: Float32Array, bShape: readonly number[],
    transposeA: boolean, transposeB: boolean, out: Float32Array, outShape: readonly number[]): void;
  /**
   * Runs a small graph (built once per key) on float32 inputs (uint8 for packed 4-bit
   * codes) and writes its float32 outputs into the given arrays; scalars are inputs of
   * dims []. For the fused ops' exp-heavy kernels, which MLAS vectorizes (Sigmoid,
   * Softmax) and JavaScript cannot, and for products fused with what surrounds them.
   * `singleThread` for element-wise graphs: waking a pool thread (spinning is off) costs
   * more than it saves on a few hundred thousand values (SwiGLU at 352K: 0.5 ms on one
   * thread, 0.9 ms on two).
   */
  runGraph(key: string, graph: () => GraphSpec, inputs: Record<string, [Float32Array | Uint8Array | BigInt64Array, readonly number[]]>,
    outputs: Record<string, [Float32Array, readonly number[]]>, opts?: { singleThread?: boolean }): void;
  /** Native calls made so far (for the benchmark's kernels-per-step figure). */
  calls: number;
  /** Whether runs skip the binding's copies of their outputs (native/skipOutputCopies.ts). */
  readonly skipsOutputCopies: boolean;
}

export type StartResult = { ok: true; provider: NativeProvider } | { ok: false; why: string };

/** Whether QLORA_NATIVE asks for the native provider to stay off. */
export function nativeDisabledByEnv(): boolean {
  const v = (process.env.QLORA_NATIVE ?? '').trim().toLowerCase();
  return v === '0' || v === 'false' || v === 'off' || v === 'no';
}

/** QLORA_NATIVE_THREADS: intra-op threads (default: the machine's cores). */
function threadsFromEnv(): number | undefined {
  const v = process.env.QLORA_NATIVE_THREADS;
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`QLORA_NATIVE_THREADS must be a whole number of threads >= 1, got ${JSON.stringify(v)}`);
  return n;
}

/** Loads onnxruntime-node, builds the sessions lazily, and checks every product kind against plain loops. */
export function startOrtProvider(opts: { threads?: number; packageName?: string } = {}): StartResult {
  const threads = opts.threads ?? threadsFromEnv() ?? availableParallelism();
  let ort: OrtBinding, Tensor: OrtTensorCtor;
  try {
    // Dynamic, and external to the bundle: the package is optional and carries .node files.
    const pkg = opts.packageName ?? 'onnxruntime-node';
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    Tensor = (require(pkg) as { Tensor: OrtTensorCtor }).Tensor;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    ort = require(`${pkg}/dist/binding.js`) as OrtBinding;
    ort.initOrt();
  } catch (e) {
    return { ok: false, why: `onnxruntime-node did not load (${firstLine((e as Error).message)})` };
  }
  const sessionOptions = (threads: number) => ({
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    enableCpuMemArena: true,
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  });
  // Decided before any session is built: it changes every graph.
  const skipMessage = probeSkipCopies(() => new ort.binding.InferenceSession(), Tensor);
  const sessions = new Map<string, OrtSession>();
  const session = (kind: string, graph: () => GraphSpec, threads = provider.threads): OrtSession => {
    const key = `${threads}:${kind}`;
    let s = sessions.get(key);
    if (!s) {
      s = new ort.binding.InferenceSession();
      const bytes = encodeModel(skipMessage ? withSkipCopiesOutput(graph()) : graph());
      s.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, sessionOptions(threads));
      sessions.set(key, s);
    }
    return s;
  };
  const labelOf = (n: number) => `ORT MLAS, ${n} thread${n === 1 ? '' : 's'}`;
  const runOptions = {};
  const run = (s: OrtSession, feeds: Record<string, unknown>, fetches: Record<string, unknown>, outBytes: number) => {
    provider.calls++;
    if (skipMessage && outBytes >= SKIP_COPIES_MIN_BYTES) runSkippingCopies(s, feeds, fetches, skipMessage);
    else s.run(feeds, fetches, runOptions);
  };
  const provider = {
    label: labelOf(threads),
    threads,
    calls: 0,
    skipsOutputCopies: skipMessage !== undefined,
    setThreads(n: number) {
      if (!Number.isInteger(n) || n < 1) throw new Error(`native provider: threads must be a whole number >= 1, got ${n}`);
      provider.threads = n;
      provider.label = labelOf(n);
    },
    matMul(a, aShape, b, bShape, transposeA, transposeB, out, outShape) {
      const key = `mm${aShape.length}${bShape.length}${+transposeA}${+transposeB}`;
      const ra = aShape.length;
      const flops = 2 * outShape.reduce((p, d) => p * d, 1) * (transposeA ? aShape[ra - 2] : aShape[ra - 1]);
      const s = session(key, () => matMulGraph(aShape.length, bShape.length, outShape.length, transposeA, transposeB),
        flops < SMALL_PRODUCT_FLOPS ? 1 : provider.threads);
      run(s, { a: new Tensor('float32', a, aShape), b: new Tensor('float32', b, bShape) },
        { y: new Tensor('float32', out, outShape) }, out.byteLength);
    },
  } as { -readonly [K in keyof NativeProvider]: NativeProvider[K] };
  provider.runGraph = (key, graph, inputs, outputs, opts) => {
    const s = session(key, graph, opts?.singleThread ? 1 : provider.threads);
    const feeds: Record<string, unknown> = {}, fetches: Record<string, unknown> = {};
    let outBytes = 0;
    for (const [n, [d, dims]] of Object.entries(inputs)) feeds[n] = new Tensor(d instanceof Uint8Array ? 'uint8' : d instanceof BigInt64Array ? 'int64' : 'float32', d, dims);
    for (const [n, [d, dims]] of Object.entries(outputs)) { fetches[n] = new Tensor('float32', d, dims); outBytes += d.byteLength; }
    run(s, feeds, fetches, outBytes);
  };
  try {
    selfTest(provider);
  } catch (e) {
    return { ok: false, why: `its self-test failed (${firstLine((e as Error).message)})` };
  }
  primeMalloc(() => new ort.binding.InferenceSession(), Tensor);
  return { ok: true, provider: provider as NativeProvider };
}

// Products below this many FLOPs (LoRA's rank-r products: at most 2*256*16*1376 = 11M on
// the benchmark shape) run on one thread: waking a second thread costs more than it saves,
// and on a loaded machine the wait for it dominates.
const SMALL_PRODUCT_FLOPS = 16e6;

/** FusedMatMul (com.microsoft): MatMul with transA/transB taken inside MLAS's packing, batched. */
function matMulGraph(rankA: number, rankB: number, rankY: number, transA: boolean, transB: boolean): GraphSpec {
  const dims = (p: string, r: number) => Array.from({ length: r }, (_, i) => `${p}${i}`);
  return {
    nodes: [fusedMatMul('a', 'b', 'y', { transA, transB })],
    inputs: [{ name: 'a', elemType: FLOAT, dims: dims('a', rankA) }, { name: 'b', elemType: FLOAT, dims: dims('b', rankB) }],
    outputs: [{ name: 'y', elemType: FLOAT, dims: dims('y', rankY) }],
  };
}

/** Every transpose combination, a batch, and a broadcast batch of one, against plain loops (odd sizes on purpose). */
function selfTest(p: NativeProvider): void {
  const M = 5, K = 7, N = 3;
  for (const [batchA, batchB] of [[1, 1], [2, 2], [2, 1]]) {
    for (const tA of [false, true]) {
      for (const tB of [false, true]) {
        const a = Float32Array.from({ length: batchA * M * K }, (_, i) => ((i * 7) % 11) - 5);
        const b = Float32Array.from({ length: batchB * K * N }, (_, i) => ((i * 5) % 13) - 6);
        const batch = Math.max(batchA, batchB);
        const out = new Float32Array(batch * M * N);
        p.matMul(a, [batchA, ...(tA ? [K, M] : [M, K])], b, [batchB, ...(tB ? [N, K] : [K, N])], tA, tB, out, [batch, M, N]);
        for (let q = 0; q < batch; q++) {
          for (let m = 0; m < M; m++) {
            for (let n = 0; n < N; n++) {
              let s = 0;
              for (let k = 0; k < K; k++) {
                const av = a[(batchA === 1 ? 0 : q) * M * K + (tA ? k * M + m : m * K + k)];
                const bv = b[(batchB === 1 ? 0 : q) * K * N + (tB ? n * K + k : k * N + n)];
                s += av * bv;
              }
              const got = out[q * M * N + m * N + n];
              if (got !== s) throw new Error(`matMul(transA ${tA}, transB ${tB}, batches ${batchA}/${batchB}) gave ${got} at [${q},${m},${n}], expected ${s}`);
            }
          }
        }
      }
    }
  }
  p.calls = 0;
}

function firstLine(s: string): string {
  return s.split('\n')[0];
}

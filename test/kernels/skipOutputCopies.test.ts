// Runs that skip onnxruntime-node's copies of their outputs (kernels/native/skipOutputCopies.ts):
// the probe recognizes this binding's behaviour, a skipping run writes the same values as a
// plain one and allocates no output ArrayBuffer, a run that fails for another reason still
// throws its own error, and the provider uses the path where the probe says it holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeModel, FLOAT, fusedMatMul, type GraphSpec } from '../../server/engine/kernels/native/onnxGraph';
import { probeSkipCopies, runSkippingCopies, withSkipCopiesOutput } from '../../server/engine/kernels/native/skipOutputCopies';
import { startOrtProvider } from '../../server/engine/kernels/native/ortProvider';
import { Rng } from '../../server/engine/rng';
import type { OrtBinding, OrtSession as Session, OrtTensorCtor as TensorCtor } from '../../server/engine/kernels/native/ortBinding';


function binding(): { newSession: () => Session; Tensor: TensorCtor } | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Tensor } = require('onnxruntime-node') as { Tensor: TensorCtor };
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const ort = require('onnxruntime-node/dist/binding.js') as OrtBinding;
    ort.initOrt();
    return { newSession: () => new ort.binding.InferenceSession(), Tensor };
  } catch {
    return undefined;
  }
}

const v = (name: string, d0: string, d1: string) => ({ name, elemType: FLOAT, dims: [d0, d1] });
const product: GraphSpec = { nodes: [fusedMatMul('x', 'w', 'y', { transB: true })], inputs: [v('x', 'n', 'k'), v('w', 'm', 'k')], outputs: [v('y', 'n', 'm')] };

function load(newSession: () => Session, g: GraphSpec): Session {
  const s = newSession();
  const bytes = encodeModel(g);
  s.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  return s;
}

test('a run that skips the output copies writes what a plain run writes, and allocates no output buffer', (t) => {
  const b = binding();
  if (!b) { t.skip('onnxruntime-node is not installed here (optional dependency)'); return; }
  const message = probeSkipCopies(b.newSession, b.Tensor);
  if (message === undefined) { t.skip('this onnxruntime-node binding does not end a run at a sequence output: the provider runs plainly'); return; }
  const rng = new Rng(5);
  const N = 256, K = 64, M = 1024; // y is 1 MB
  const x = Float32Array.from({ length: N * K }, () => rng.normal()), w = Float32Array.from({ length: M * K }, () => rng.normal());
  const feeds = () => ({ x: new b.Tensor('float32', x, [N, K]), w: new b.Tensor('float32', w, [M, K]) });
  const plain = new Float32Array(N * M), skipped = new Float32Array(N * M).fill(Number.NaN);
  const s = load(b.newSession, withSkipCopiesOutput(product));
  s.run(feeds(), { y: new b.Tensor('float32', plain, [N, M]) }, {});
  const before = process.memoryUsage().arrayBuffers;
  for (let i = 0; i < 8; i++) runSkippingCopies(s, feeds(), { y: new b.Tensor('float32', skipped, [N, M]) }, message);
  const grown = process.memoryUsage().arrayBuffers - before;
  assert.deepEqual(skipped, plain);
  // Eight plain runs would have allocated 8 MB of copies; a collection in between could
  // free some, so the bound is well under one copy.
  assert.ok(grown < (N * M * 4) / 2, `ArrayBuffer memory grew ${grown} bytes over 8 runs`);
});

test('a skipping run that fails for another reason throws that error', (t) => {
  const b = binding();
  if (!b) { t.skip('onnxruntime-node is not installed here (optional dependency)'); return; }
  const message = probeSkipCopies(b.newSession, b.Tensor);
  if (message === undefined) { t.skip('this onnxruntime-node binding does not end a run at a sequence output'); return; }
  const s = load(b.newSession, withSkipCopiesOutput(product));
  // k disagrees between x (3) and w (4): the session itself fails.
  assert.throws(() => runSkippingCopies(s, { x: new b.Tensor('float32', new Float32Array(6), [2, 3]), w: new b.Tensor('float32', new Float32Array(8), [2, 4]) },
    { y: new b.Tensor('float32', new Float32Array(4), [2, 2]) }, message), (e: Error) => e.message !== message && e.message.length > 0);
});

test('the provider skips the copies exactly where the probe says this binding allows it', (t) => {
  const b = binding();
  if (!b) { t.skip('onnxruntime-node is not installed here (optional dependency)'); return; }
  const started = startOrtProvider({ threads: 1 });
  assert.ok(started.ok, started.ok ? '' : started.why);
  assert.equal(started.provider.skipsOutputCopies, probeSkipCopies(b.newSession, b.Tensor) !== undefined);
  // Large outputs take the skipping path, small ones the plain one; both must be right.
  for (const [n, k, m] of [[2, 3, 2], [300, 40, 200]]) {
    const a = Float32Array.from({ length: n * k }, (_, i) => (i % 7) - 3), w = Float32Array.from({ length: k * m }, (_, i) => (i % 5) - 2);
    const out = new Float32Array(n * m).fill(Number.NaN);
    started.provider.matMul(a, [n, k], w, [k, m], false, false, out, [n, m]);
    for (let i = 0; i < n; i += Math.max(1, n >> 3)) {
      for (let j = 0; j < m; j++) {
        let s = 0;
        for (let q = 0; q < k; q++) s += a[i * k + q] * w[q * m + j];
        assert.equal(out[i * m + j], s, `[${i},${j}] of ${n}x${k} @ ${k}x${m}`);
      }
    }
  }
});

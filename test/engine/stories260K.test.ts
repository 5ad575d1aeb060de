// The real pretrained stories260K model through the real `qlora` command: its known
// greedy opening, eval against the float64 reference, NF4 against fp32, and conversion
// to the Hugging Face layout. Skips with a printed reason where ../shared is absent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stories260K } from '../helpers/shared';
import { qlora, qloraJson } from '../helpers/cli';
import { referenceLoss } from '../helpers/reference';
import { loadModel } from '../../server/engine/formats/modelFolder';
import { initBackend } from '../../server/engine/backend';
import { LlamaModel } from '../../server/engine/model/llama';
import { tf } from '../../server/engine/tf';

const shared = stories260K();
const STORY = 'Once upon a time, there was a boy named Tom. Tom had a red ball. He liked to throw the ball high ' +
  'in the sky. One day, the ball went over the fence. Tom was sad. His friend Sue came to help. ' +
  'They found the ball under a big tree. Tom said thank you to Sue, and they played all day.';

interface Eval { tokens: number; loss: number; perplexity: number }

test('greedy generate from an empty prompt prints the known opening', { skip: shared.skip }, () => {
  const r = qlora(['generate', '--model', shared.dir, '--max-tokens', '40', '--temperature', '0']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.startsWith('Once upon a time, there was a little girl named Lily. She loved to play outside in the park.'),
    `got: ${r.stdout}`);
});

test('eval --quantization none equals a float64 implementation to 1e-5; NF4 perplexity within 1.10x of fp32', { skip: shared.skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-eval-'));
  try {
    const file = join(dir, 'story.txt');
    writeFileSync(file, STORY);
    const fp32 = qloraJson<Eval>(['eval', '--model', shared.dir, '--quantization', 'none', '--text', file]);
    const nf4 = qloraJson<Eval>(['eval', '--model', shared.dir, '--quantization', 'nf4', '--text', file]);
    const m = await loadModel(shared.dir);
    const ids = m.tokenizer.encode(STORY, { bos: true });
    const ref = referenceLoss(m.config, m.weights, ids);
    const rel = Math.abs(fp32.loss - ref.loss) / ref.loss;
    const ratio = nf4.perplexity / fp32.perplexity;
    console.log(`# ${fp32.tokens} tokens: fp32 loss ${fp32.loss.toFixed(6)} vs float64 ${ref.loss.toFixed(6)} (rel ${rel.toExponential(2)}); ` +
      `perplexity fp32 ${fp32.perplexity.toFixed(4)}, nf4 ${nf4.perplexity.toFixed(4)}, ratio ${ratio.toFixed(4)}`);
    assert.equal(fp32.tokens, ref.tokens);
    assert.ok(rel < 1e-5, `relative difference ${rel}`);
    assert.ok(ratio < 1.10 && ratio > 0.95, `NF4/fp32 perplexity ratio ${ratio}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('convert to the Hugging Face layout, load it back: same logits as the llama2.c file (< 1e-5)', { skip: shared.skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-convert-'));
  try {
    const out = join(dir, 'hf');
    const r = qlora(['convert', shared.dir, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    await initBackend('wasm');
    const a = await loadModel(shared.dir);
    const b = await loadModel(out);
    assert.equal(b.format, 'huggingface');
    const text = 'Lily and Ben went to the park. They saw a dog.';
    const ids = a.tokenizer.encode(text, { bos: true });
    assert.deepEqual(b.tokenizer.encode(text, { bos: true }), ids, 'the converted tokenizer encodes the same ids');
    const logits = (m: typeof a) => {
      const model = LlamaModel.fromLoaded(m, { quantization: 'none', blockSize: 64, doubleQuant: false });
      const l = tf.tidy(() => model.forward(tf.tensor2d([ids], [1, ids.length], 'int32'))).dataSync();
      model.dispose();
      return l;
    };
    const la = logits(a), lb = logits(b);
    let d = 0;
    for (let i = 0; i < la.length; i++) d = Math.max(d, Math.abs(la[i] - lb[i]));
    console.log(`# max |logits(llama2.c) - logits(converted)| = ${d.toExponential(2)}`);
    assert.ok(d < 1e-5, `max abs diff ${d}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad invocations fail with one clear line, never a stack trace', () => {
  const missing = qlora(['eval', '--model', '/nonexistent/model', '--text', '/nonexistent/t.txt']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /\/nonexistent\/t\.txt: cannot read/);
  assert.doesNotMatch(missing.stderr, /\n\s+at /);
  const notModel = qlora(['generate', '--model', tmpdir(), '--max-tokens', '1']);
  assert.equal(notModel.code, 1);
  assert.match(notModel.stderr, new RegExp(tmpdir()));
  const usage = qlora(['generate', '--temperature', 'hot']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--temperature/);
});

// What a run refuses to save or to call done (issue 20, findings 6 and 12): weights an
// absurd learning rate has ruined (NaN, overflowing, or collapsed to a uniform output)
// never reach a checkpoint or the adapter, and the run fails instead of ending "done";
// what a killed run left half-written goes when the next run starts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { qlora } from '../helpers/cli';
import { runConfig, type RunConfigOptions } from '../helpers/runConfig';
import { shipLogs } from '../../server/demo/corpus';
import { writeTinyModel, TINY_MODEL } from '../../server/demo/tinyModel';
import { newestCheckpoint } from '../../server/engine/train/checkpoint';
import { readModelConfig } from '../../server/engine/formats/modelFolder';
import { train } from '../../server/engine/train/trainer';
import { checkConfigText } from '../../server/config/load';
import { readFileSync } from 'node:fs';

function workspace(o: RunConfigOptions): { dir: string; cfg: string; out: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-guard-'));
  const modelDir = join(dir, 'model');
  writeTinyModel(modelDir, shipLogs(200, 1), { ...TINY_MODEL, nLayers: 1 });
  writeFileSync(join(dir, 'train.jsonl'), shipLogs(60, 3).map((text) => JSON.stringify({ text })).join('\n') + '\n');
  writeFileSync(join(dir, 'run.qlora'), runConfig(modelDir, o));
  return { dir, cfg: join(dir, 'run.qlora'), out: join(dir, 'runs/r'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** `qlora eval` of a checkpoint's adapter: its mean loss on the training text. */
function evalCheckpoint(dir: string, checkpoint: string): number {
  const text = join(dir, 'eval.txt');
  writeFileSync(text, shipLogs(8, 3).join('\n'));
  const r = qlora(['eval', '--model', join(dir, 'model'), '--adapter', checkpoint, '--text', text, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { loss: number }).loss;
}

for (const learningRate of [1e30, 1e6]) {
  test(`learning_rate ${learningRate}: the run fails, and every checkpoint it kept still evaluates to a finite, non-uniform loss`, () => {
    const ws = workspace({ maxSteps: 12, saveEvery: 1, evalEvery: 0, learningRate, dropout: 0 });
    try {
      const r = qlora(['train', ws.cfg, '--json']);
      assert.notEqual(r.code, 0, `the run must not end "done":\n${r.stdout.slice(-2000)}`);
      assert.match(r.stderr + r.stdout, /learning_rate/, 'the message says what to change');
      assert.ok(!existsSync(join(ws.out, 'adapter')), 'no final adapter of ruined weights');
      const kept = newestCheckpoint(ws.out);
      if (kept) {
        const loss = evalCheckpoint(ws.dir, kept);
        assert.ok(Number.isFinite(loss), `${kept} evaluates to ${loss}`);
        assert.ok(Math.abs(loss - Math.log(readModelConfig(join(ws.dir, 'model')).vocabSize)) > 1e-3, `${kept} is not a collapsed model (loss ${loss})`);
      }
      console.log(`# lr ${learningRate}: exit ${r.code}, kept ${kept ?? 'no checkpoint'}: ${(r.stderr.trim().split('\n').pop() ?? '').slice(0, 200)}`);
    } finally {
      ws.cleanup();
    }
  });
}

test('what a kill before the first checkpoint left half-written is removed when the next run starts; nothing else is', async () => {
  const ws = workspace({ maxSteps: 1, saveEvery: 0, evalEvery: 0 });
  try {
    const ck = join(ws.out, 'checkpoints');
    const debris = ['.step-3.tmp', '..step-3.tmp.tmp-4242', '..step-3.tmp.tmp-4242.old'];
    for (const d of debris) { mkdirSync(join(ck, d), { recursive: true }); writeFileSync(join(ck, d, 'adapter_model.safetensors'), 'half'); }
    mkdirSync(join(ws.out, '.adapter.tmp-4242'), { recursive: true });
    writeFileSync(join(ck, '.notes'), 'a user file');
    mkdirSync(join(ws.out, '.git'));
    const { config } = checkConfigText(readFileSync(ws.cfg, 'utf8'), ws.dir, ws.cfg);
    let atStart: string[] | undefined;
    const logs: string[] = [];
    // Looked at as the run starts, before its first save (which would clean up anyway).
    await train(config, {
      onEvent: (e) => {
        if (e.type === 'start') atStart = readdirSync(ck).filter((n) => n.startsWith('.'));
        if (e.type === 'log') logs.push(e.message);
      },
    });
    assert.deepEqual(atStart, ['.notes'], 'only the user file stays');
    assert.ok(existsSync(join(ws.out, '.git')), 'a folder the run did not create stays');
    assert.ok(!existsSync(join(ws.out, '.adapter.tmp-4242')));
    assert.ok(logs.some((m) => /half-written/.test(m)), 'the run says what it removed');
    assert.deepEqual(readdirSync(ck).filter((n) => n.startsWith('.')), ['.notes'], 'the save keeps the user file too');
  } finally {
    ws.cleanup();
  }
});

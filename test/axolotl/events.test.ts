// Axolotl's output as this project's events: a recorded log (Hugging Face Trainer dicts,
// tqdm progress, checkpoint saves, in Axolotl's real format, hand-made) and a
// trainer_state.json, through the converter; and `qlora train --engine axolotl` end to end
// with that log played back as the `axolotl` command, and without Axolotl installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AxolotlEventConverter, eventsFromTrainerState, parsePythonDict } from '../../server/axolotl/events';
import type { TrainEvent } from '../../server/engine/train/events';
import { qlora } from '../helpers/cli';
import { makeWorkspace } from '../config/workspace';

const LOG = readFileSync(join(__dirname, 'fixtures/axolotl-train.log'), 'utf8');
const STATE = JSON.parse(readFileSync(join(__dirname, 'fixtures/trainer_state.json'), 'utf8'));

test('Python dict literals as the Trainer prints them, numbers or strings', () => {
  assert.deepEqual(parsePythonDict("{'loss': 2.4512, 'grad_norm': 1.9375, 'learning_rate': 6.666666666666667e-05, 'epoch': 0.17}"),
    { loss: 2.4512, grad_norm: 1.9375, learning_rate: 6.666666666666667e-05, epoch: 0.17 });
  assert.deepEqual(parsePythonDict("{'loss': '2.104', 'grad_norm': nan}"), { loss: '2.104', grad_norm: 'nan' });
  assert.equal(parsePythonDict('no dict here'), undefined);
});

test('a recorded Axolotl log becomes step, eval, checkpoint and done events', () => {
  let clock = 0;
  const c = new AxolotlEventConverter({ totalSteps: 0, outputDir: '/runs/ax', tokensPerStep: 1024, now: () => (clock += 2000) });
  const events: TrainEvent[] = LOG.split('\n').flatMap((l) => c.feed(l));
  events.push(...c.finish(0));
  const steps = events.filter((e) => e.type === 'step');
  assert.deepEqual(steps.map((e) => e.step), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(steps.map((e) => e.loss), [2.4512, 2.3305, 2.104, 1.9877, 1.8801, 1.8312]);
  assert.deepEqual(steps.map((e) => e.totalSteps), [6, 6, 6, 6, 6, 6], 'the total comes from tqdm');
  assert.equal(steps[2].lr, 2e-4);
  assert.equal(steps[0].gradNorm, 1.9375);
  assert.ok(steps.every((e) => e.tokensPerSec > 0 && Number.isFinite(e.epoch)));
  assert.deepEqual(events.filter((e) => e.type === 'eval').map((e) => [e.step, e.evalLoss]), [[3, 2.0193], [6, 1.8544]]);
  assert.deepEqual(events.filter((e) => e.type === 'checkpoint').map((e) => [e.step, e.path]), [[4, './outputs/checkpoint-4'], [6, './outputs/checkpoint-6']]);
  assert.deepEqual(events.at(-1), { type: 'done', step: 6, adapter: '/runs/ax', stopped: false });
});

test('a traceback or a non-zero exit is an error event with the exception line', () => {
  const c = new AxolotlEventConverter({ totalSteps: 10, outputDir: '/r' });
  const lines = ['Traceback (most recent call last):', '  File "/x/train.py", line 3, in <module>', 'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB'];
  const events = [...lines.flatMap((l) => c.feed(l)), ...c.finish(1)];
  assert.equal(events.length, 1);
  assert.equal(events[0].type, 'error');
  assert.match((events[0] as { message: string }).message, /Axolotl: torch\.OutOfMemoryError: CUDA out of memory/);
  const d = new AxolotlEventConverter({ totalSteps: 10, outputDir: '/r' });
  assert.deepEqual(d.finish(2).map((e) => e.type), ['error']);
});

test('trainer_state.json becomes the same step and eval events as the log', () => {
  const events = eventsFromTrainerState(STATE);
  assert.deepEqual(events.filter((e) => e.type === 'step').map((e) => [e.step, e.loss]),
    [[1, 2.4512], [2, 2.3305], [3, 2.1043], [4, 1.9877], [5, 1.8801], [6, 1.8312]]);
  assert.deepEqual(events.filter((e) => e.type === 'eval').map((e) => [e.step, e.evalLoss]), [[3, 2.0193], [6, 1.8544]]);
  assert.ok(events.every((e) => e.type !== 'step' || e.totalSteps === 6));
});

test('qlora train --engine axolotl: the recorded run played back as `axolotl`, and a clear message without it', () => {
  const ws = makeWorkspace();
  const bin = mkdtempSync(join(tmpdir(), 'qlora-axolotl-bin-'));
  try {
    const cfg = join(ws.dir, 'run.qlora');
    writeFileSync(cfg, 'model:\n  base: ./models/tiny\ndata:\n  train: ./data/text.jsonl\ntraining:\n  max_steps: 6\noutput:\n  dir: ./runs/ax\n');
    const missing = qlora(['train', '--engine', 'axolotl', cfg, '--json'], { env: { PATH: '/nonexistent', QLORA_AXOLOTL: '' } });
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr + missing.stdout, /axolotl command is not on PATH.*pip install axolotl/s);
    // The recorded output, as Axolotl prints it (tqdm on stderr, the Trainer's dicts on stdout).
    const exe = join(bin, 'axolotl');
    writeFileSync(exe, `#!/bin/sh\n[ "$1" = train ] && [ -f "$2" ] || { echo "usage: axolotl train CONFIG" >&2; exit 2; }\ncat ${JSON.stringify(join(__dirname, 'fixtures/axolotl-train.log'))}\n`);
    chmodSync(exe, 0o755);
    const r = qlora(['train', '--engine', 'axolotl', cfg, '--json'], { env: { QLORA_AXOLOTL: exe } });
    assert.equal(r.code, 0, r.stderr);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as TrainEvent);
    assert.deepEqual(events.filter((e) => e.type === 'step').map((e) => e.step), [1, 2, 3, 4, 5, 6]);
    assert.equal(events.at(-1)?.type, 'done');
    const yaml = readFileSync(join(ws.dir, 'runs', 'ax', 'axolotl.yml'), 'utf8');
    assert.match(yaml, /^max_steps: 6$/m);
    assert.match(yaml, /^output_dir: \.\/$/m, 'output_dir relative to the YAML, which sits in it');
  } finally {
    ws.cleanup();
    rmSync(bin, { recursive: true, force: true });
  }
});

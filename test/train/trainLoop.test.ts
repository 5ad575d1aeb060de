// The training loop end to end through the real `qlora train` command: exact resume on
// cpu and wasm, a learning run on the real stories260K, the PEFT adapter it writes, and
// configs refused before any training.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { qlora, qloraJson } from '../helpers/cli';
import { stories260K } from '../helpers/shared';
import { shipLogs } from '../../server/demo/corpus';
import { writeTinyModel, TINY_MODEL } from '../../server/demo/tinyModel';
import { readSafetensors } from '../../server/engine/formats/safetensors';
import { loadModel } from '../../server/engine/formats/modelFolder';
import { referenceLoss } from '../helpers/reference';
import { runConfig } from '../helpers/runConfig';

const shared = stories260K();

interface Ev { type: string; step?: number; loss?: number; evalLoss?: number; adapter?: string; path?: string }

function events(out: string): Ev[] {
  return out.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Ev);
}

function workspace(modelDir: string, cfg: (base: string) => string, lines = shipLogs(120, 3)): { dir: string; cfg: string } {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-train-'));
  writeFileSync(join(dir, 'train.jsonl'), lines.map((text) => JSON.stringify({ text })).join('\n') + '\n');
  writeFileSync(join(dir, 'run.qlora'), cfg(modelDir));
  return { dir, cfg: join(dir, 'run.qlora') };
}

const resumeConfig = (backend: string) => (base: string) =>
  runConfig(base, { maxSteps: 12, saveEvery: 6, evalEvery: 4, gradAccum: 2, backend });

for (const backend of ['wasm', 'cpu']) {
  test(`${backend}: 12 steps straight equal 6 steps then --resume, bit for bit (steps 7-12)`, () => {
    const modelDir = mkdtempSync(join(tmpdir(), 'qlora-tiny-'));
    writeTinyModel(modelDir, shipLogs(200, 1), { ...TINY_MODEL, nLayers: 2 });
    const { dir, cfg } = workspace(modelDir, resumeConfig(backend));
    try {
      const straight = qlora(['train', cfg, '--json']);
      assert.equal(straight.code, 0, straight.stderr);
      const a = events(straight.stdout).filter((e) => e.type === 'step');
      assert.equal(a.length, 12);
      rmSync(join(dir, 'runs'), { recursive: true });
      const first = qlora(['train', cfg, '--max-steps', '6', '--json']);
      assert.equal(first.code, 0, first.stderr);
      assert.ok(existsSync(join(dir, 'runs/r/checkpoints/step-6/trainer_state.json')));
      const second = qlora(['train', cfg, '--resume', '--json']);
      assert.equal(second.code, 0, second.stderr);
      const b = events(second.stdout).filter((e) => e.type === 'step');
      assert.deepEqual(b.map((e) => e.step), [7, 8, 9, 10, 11, 12]);
      assert.deepEqual(b.map((e) => e.loss), a.slice(6).map((e) => e.loss), 'losses of steps 7-12');
      // Evaluation after resume too: the held-out loss at step 8 and 12 is the same.
      const evA = events(straight.stdout).filter((e) => e.type === 'eval' && e.step! > 6).map((e) => e.evalLoss);
      const evB = events(second.stdout).filter((e) => e.type === 'eval').map((e) => e.evalLoss);
      assert.deepEqual(evB, evA);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(modelDir, { recursive: true, force: true });
    }
  });
}

test('a run killed while writing a checkpoint resumes from the previous complete one', () => {
  const modelDir = mkdtempSync(join(tmpdir(), 'qlora-tiny-'));
  writeTinyModel(modelDir, shipLogs(200, 1), { ...TINY_MODEL, nLayers: 1 });
  const { dir, cfg } = workspace(modelDir, resumeConfig('wasm'));
  try {
    assert.equal(qlora(['train', cfg, '--max-steps', '6', '--json']).code, 0);
    // What SIGKILL leaves at any point of writing step 12: the temporary folder, partly
    // written (here: a truncated adapter file and no trainer_state.json).
    const ck = join(dir, 'runs/r/checkpoints');
    cpSync(join(ck, 'step-6'), join(ck, '.step-12.tmp'), { recursive: true });
    rmSync(join(ck, '.step-12.tmp', 'trainer_state.json'));
    writeFileSync(join(ck, '.step-12.tmp', 'adapter_model.safetensors'), 'trunc');
    const r = qlora(['train', cfg, '--resume', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const ev = events(r.stdout);
    assert.match(JSON.stringify(ev.find((e) => e.type === 'log')), /resuming from .*step-6 at step 6/);
    assert.equal(ev.filter((e) => e.type === 'step')[0].step, 7);
    assert.ok(!existsSync(join(ck, '.step-12.tmp')), 'the debris was replaced by the complete checkpoint');
    assert.ok(existsSync(join(ck, 'step-12', 'trainer_state.json')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(modelDir, { recursive: true, force: true });
  }
});

test('bad configs are refused before training, naming the key and line', () => {
  const modelDir = mkdtempSync(join(tmpdir(), 'qlora-tiny-'));
  writeTinyModel(modelDir, shipLogs(50, 1), { ...TINY_MODEL, nLayers: 1 });
  const { dir, cfg } = workspace(modelDir, resumeConfig('wasm'));
  const base = readFileSync(cfg, 'utf8');
  const cases: [string, (s: string) => string, RegExp][] = [
    ['unknown key', (s) => s.replace('  r: 4', '  rank: 4'), /run\.qlora:5:\d+: .*rank/],
    ['wrong type', (s) => s.replace('micro_batch_size: 2', 'micro_batch_size: two'), /run\.qlora:16:\d+: .*micro_batch_size/],
    ['out of range', (s) => s.replace('dropout: 0.1', 'dropout: 1.5'), /run\.qlora:7:\d+: .*dropout/],
    ['missing data file', (s) => s.replace('./train.jsonl', './nope.jsonl'), /run\.qlora:10:\d+: .*nope\.jsonl/],
    ['base that is not a model', (s) => s.replace(modelDir, dir), /run\.qlora:2:\d+: .*model/i],
  ];
  try {
    for (const [label, edit, want] of cases) {
      writeFileSync(cfg, edit(base));
      const r = qlora(['train', cfg, '--json']);
      assert.equal(r.code, 1, `${label}: exit code`);
      assert.match(r.stderr, want, `${label}: ${r.stderr}`);
      console.log(`# ${label}: ${r.stderr.trim().split('\n')[0]}`);
      assert.ok(!events(r.stdout).some((e) => e.type === 'step'), `${label}: no training step ran`);
      assert.ok(!existsSync(join(dir, 'runs')), `${label}: nothing written`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(modelDir, { recursive: true, force: true });
  }
});

test('stories260K + NF4: training loss falls >= 30% in 60 steps, held-out loss falls; the adapter is valid PEFT and evals like a hand merge',
  { skip: shared.skip }, async () => {
    const cfgText = (base: string) => runConfig(base, {
      maxSteps: 60, saveEvery: 0, evalEvery: 20, r: 8, alpha: 16, learningRate: 2e-3, microBatch: 4, maxSeqLen: 64, dropout: 0.05,
    });
    const { dir, cfg } = workspace(shared.dir, cfgText, shipLogs(300, 5));
    try {
      const r = qlora(['train', cfg, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const ev = events(r.stdout);
      const steps = ev.filter((e) => e.type === 'step');
      const evals = ev.filter((e) => e.type === 'eval');
      const early = steps.slice(0, 3).reduce((s, e) => s + e.loss!, 0) / 3;
      const late = steps.slice(-3).reduce((s, e) => s + e.loss!, 0) / 3;
      console.log(`# training loss ${early.toFixed(4)} (steps 1-3) -> ${late.toFixed(4)} (steps 58-60): ` +
        `${(100 * (1 - late / early)).toFixed(1)}% lower; eval ${evals.map((e) => e.evalLoss!.toFixed(4)).join(' -> ')}`);
      assert.ok(late <= 0.7 * early, `loss ${early} -> ${late}`);
      assert.ok(evals.length >= 2 && evals[evals.length - 1].evalLoss! < evals[0].evalLoss!);

      // PEFT layout: names, shapes, config.
      const adapter = ev.find((e) => e.type === 'done')!.adapter!;
      const peft = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8'));
      assert.equal(peft.peft_type, 'LORA');
      assert.equal(peft.task_type, 'CAUSAL_LM');
      assert.equal(peft.r, 8);
      assert.equal(peft.lora_alpha, 16);
      assert.deepEqual(peft.target_modules, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
      assert.equal(peft.bias, 'none');
      // Every key is a field of PEFT's LoraConfig (peft/tuners/lora/config.py and PeftConfig),
      // so LoraConfig.from_pretrained takes the file as it is.
      const loraConfigFields = ['peft_type', 'task_type', 'inference_mode', 'base_model_name_or_path', 'revision', 'r',
        'target_modules', 'lora_alpha', 'lora_dropout', 'fan_in_fan_out', 'bias', 'use_rslora', 'modules_to_save',
        'init_lora_weights', 'layers_to_transform', 'layers_pattern', 'rank_pattern', 'alpha_pattern'];
      for (const k of Object.keys(peft)) assert.ok(loraConfigFields.includes(k), `adapter_config.json key ${k} is not a LoraConfig field`);
      const { tensors } = readSafetensors(join(adapter, 'adapter_model.safetensors'));
      assert.equal(tensors.size, 5 * 7 * 2);
      assert.deepEqual(tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')!.shape, [8, 64]);
      assert.deepEqual(tensors.get('base_model.model.model.layers.4.mlp.down_proj.lora_B.weight')!.shape, [64, 8]);

      // eval --adapter (fp32 base) equals the float64 loss of W + (alpha/r) B A merged by hand.
      const text = join(dir, 'held-out.txt');
      const story = shipLogs(3, 99).join(' ');
      writeFileSync(text, story);
      const got = qloraJson<{ loss: number }>(['eval', '--model', shared.dir, '--adapter', adapter, '--quantization', 'none', '--text', text]);
      const m = await loadModel(shared.dir);
      const scale = 16 / 8;
      for (const [name, t] of tensors) {
        if (!name.endsWith('.lora_A.weight')) continue;
        const module = name.slice('base_model.model.'.length, -'.lora_A.weight'.length);
        const A = t, B = tensors.get(name.replace('lora_A', 'lora_B'))!;
        const W = m.weights.get(`${module}.weight`)!;
        const [out, inp] = W.shape, r = A.shape[0];
        for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) {
          let s = 0;
          for (let k = 0; k < r; k++) s += B.data[o * r + k] * A.data[k * inp + i];
          W.data[o * inp + i] += scale * s;
        }
      }
      const ref = referenceLoss(m.config, m.weights, m.tokenizer.encode(story, { bos: true }));
      const base = qloraJson<{ loss: number }>(['eval', '--model', shared.dir, '--quantization', 'none', '--text', text]);
      console.log(`# held-out ship's log: base ${base.loss.toFixed(4)}, base+adapter ${got.loss.toFixed(4)}, hand merge (float64) ${ref.loss.toFixed(4)}`);
      assert.ok(Math.abs(got.loss - ref.loss) / ref.loss < 1e-5, `${got.loss} vs ${ref.loss}`);
      assert.ok(got.loss < base.loss, 'the adapter helps on text of the style it learnt');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

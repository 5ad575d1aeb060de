// Real shapes: random-weight models with the exact configs of models people fine-tune
// (test/tools/make-model.ts), trained for a few steps at the scaffold's defaults (NF4 +
// double quant, LoRA r 16 on all seven projections, micro batch 1, gradient checkpointing),
// each run in its own process. Prints what was measured beside the cost lens's estimate
// (the engine's memory plan), and the PyTorch peer where python3 torch is installed.
//
// By default SmolLM2-135M at seq 256 only; QLORA_REAL_SHAPES=smollm2-135m,qwen2.5-0.5b,...
// adds others (large: minutes each, GBs of disk under QLORA_REAL_SHAPES_DIR, default the
// temp folder); QLORA_REAL_SHAPES_STEPS (default 3), QLORA_REAL_SHAPES_SEQ (default 256).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { estimateCost, parse } from '../../server/config';
import { readModelConfig } from '../../server/engine/formats/modelFolder';
import { checkMemoryPlan, MemoryPlanError } from '../../server/engine/memory/preflight';
import { LINEAR_MODULES } from '../../server/engine/model/config';
import { makeModel, RECIPES } from '../tools/make-model';
import { withTrainingFlags } from '../../server/trainingNodeFlags';

const shapes = (process.env.QLORA_REAL_SHAPES ?? 'smollm2-135m').split(',').map((s) => s.trim()).filter(Boolean);
const steps = Number(process.env.QLORA_REAL_SHAPES_STEPS ?? 3);
const seq = Number(process.env.QLORA_REAL_SHAPES_SEQ ?? 256);
const cacheDir = process.env.QLORA_REAL_SHAPES_DIR ?? join(tmpdir(), 'qlora-real-shapes');
const here = new URL('.', import.meta.url).pathname;

const gb = (n: number | null | undefined) => (n == null || !Number.isFinite(n) ? '-' : `${(n / 1e9).toFixed(2)} GB`);
const pct = (est: number, real: number | null | undefined) => (real ? `${(((est - real) / real) * 100).toFixed(0)}%` : '-');

interface RunResult {
  ok: boolean; error?: string; steps: number; loadMs: number; loadPeak: number; peakRss: number; wasmHeap: number | null;
  tensorPeak: number; secondsPerStep: number | null; tokensPerSec: number; cpuSeconds: number;
}

function modelDir(name: string): string {
  const dir = join(cacheDir, name);
  if (!existsSync(join(dir, 'config.json'))) {
    mkdirSync(cacheDir, { recursive: true });
    const t0 = Date.now();
    const out = makeModel(name, dir);
    console.log(`(made ${name}: ${(out.bytes / 1e9).toFixed(2)} GB of bf16 in ${((Date.now() - t0) / 1000).toFixed(0)} s, in ${dir})`);
  }
  return dir;
}

console.log(`\nReal shapes: NF4 + double quant, LoRA r 16 on all seven projections, micro batch 1, seq ${seq}, gradient checkpointing, wasm, ${steps} steps`);
console.log('(the machine may be shared: wall-clock figures are noisy; CPU seconds are the process\'s own)');
const rows: string[] = [];
for (const name of shapes) {
  if (!RECIPES[name]) {
    rows.push(`| ${name} | unknown shape; known: ${Object.keys(RECIPES).join(', ')} |`);
    continue;
  }
  const dir = modelDir(name);
  const model = readModelConfig(dir);
  const { config } = parse(`model:\n  base: ${dir}\ndata:\n  train: t.jsonl\n  max_seq_len: ${seq}\nlora:\n  r: 16\n  target_modules: all-linear\ntraining:\n  micro_batch_size: 1\n  backend: wasm\n`, '/x');
  const lens = estimateCost(model, config).memory.plan;
  try {
    checkMemoryPlan({
      model, quant: { quantization: 'nf4', blockSize: 64, doubleQuant: true }, lora: { r: 16, targetModules: LINEAR_MODULES },
      seqLen: seq, microBatch: 1, gradientCheckpointing: true, backend: 'wasm',
    }, dir);
  } catch (err) {
    if (!(err instanceof MemoryPlanError)) throw err;
    rows.push(`| ${name} | refused by the pre-flight: ${err.message.replace(dir + ': ', '')} |`);
    continue;
  }
  const work = mkdtempSync(join(tmpdir(), 'qlora-real-run-'));
  try {
    const r = spawnSync(process.execPath, [...withTrainingFlags([]), '--import', 'tsx', join(here, 'realShapeRun.ts'), dir, String(seq), String(steps), work], { encoding: 'utf8' });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    let m: RunResult;
    try {
      m = JSON.parse(line);
    } catch {
      rows.push(`| ${name} | the run died (exit ${r.status}, signal ${r.signal}): ${r.stderr.trim().split('\n').slice(-2).join(' ')} |`);
      continue;
    }
    if (!m.ok) {
      rows.push(`| ${name} | failed after ${m.steps} steps: ${m.error} |`);
      continue;
    }
    rows.push(`| ${name} | ${m.secondsPerStep?.toFixed(1) ?? '-'} | ${m.tokensPerSec.toFixed(1)} | ${(seq * m.steps / m.cpuSeconds).toFixed(1)} | ` +
      `${gb(m.peakRss)} | ${gb(lens.rssPeak)} (${pct(lens.rssPeak, m.peakRss)}) | ${gb(m.wasmHeap)} | ${gb(m.tensorPeak)} | ${gb(lens.heapPeak)} (${pct(lens.heapPeak, m.wasmHeap)}) | ` +
      `${gb(m.loadPeak)} | ${gb(lens.loadPeak)} |`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
console.log('| shape | s/step | tokens/s | tokens per CPU s (load included) | peak RSS | lens RSS (error) | wasm heap | tensor peak | lens heap (error) | load peak RSS | lens load |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);

// The peer: the same QLoRA math in plain PyTorch on the same shapes (peer_torch_shape.py).
const python = ['python3', '/usr/bin/python3'].find((p) => spawnSync(p, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0);
if (!python) {
  console.log('\nPeer: PyTorch is not installed here (`python3 -c "import torch"` fails), so it cannot run beside these figures ' +
    '(`sudo apt-get install python3-torch`). Measured earlier on these machines (DESIGN.md, plain PyTorch, seq 256, batch 1): ' +
    'SmolLM2-135M 1.05 GB peak RSS, 34 tokens/s; Qwen2.5-0.5B 3.6 GB, 17.6; TinyLlama-1.1B 4.5-5.2 GB, 7-7.7; Llama-3.2-1B 4.4-4.7 GB, 4.6-4.8; Llama-3.2-3B 5.7 GB, 0.74.');
} else {
  console.log(`\nPeer: PyTorch (${python}) on the same shapes: NF4 + double quant dequantized per step, LoRA r 16 on all seven, checkpointing, chunked loss, AdamW`);
  console.log('| shape | ms/step | tokens/s | peak RSS | threads |');
  console.log('|---|---|---|---|---|');
  for (const name of shapes.filter((n) => RECIPES[n])) {
    const r = spawnSync(python, [join(here, 'peer_torch_shape.py'), join(cacheDir, name, 'config.json'), String(seq), String(Math.max(1, steps))], { encoding: 'utf8' });
    if (r.status !== 0) { console.log(`| ${name} | failed: ${r.stderr.trim().split('\n').pop()} |`); continue; }
    const p = JSON.parse(r.stdout.trim().split('\n').pop()!);
    console.log(`| ${name} | ${p.msPerStep.toFixed(0)} | ${p.tokensPerSec.toFixed(1)} | ${gb(p.peakRss)} | ${p.threads} |`);
  }
}

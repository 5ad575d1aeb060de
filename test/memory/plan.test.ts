// The memory plan and the pre-flight: one function for the lens and the trainer; a run
// that does not fit is refused before any loading, naming its largest parts and settings
// that fit; the "over the wasm heap" flag shows with backend auto too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { estimateCost, parse } from '../../server/config';
import { loadConfigFile } from '../../server/config/load';
import { configText } from '../../server/config/write';
import { parseHfConfig } from '../../server/engine/formats/hfConfig';
import { checkMemoryPlan, fittingSeqLen, memoryBudget, MemoryPlanError, overBudget } from '../../server/engine/memory/preflight';
import { NATIVE_RUNTIME_BYTES, planMemory, type MemoryPlanInput } from '../../server/engine/memory/plan';
import { LINEAR_MODULES } from '../../server/engine/model/config';
import { train } from '../../server/engine/train/trainer';
import { RECIPES } from '../tools/make-model';

const shape = (name: string) => parseHfConfig(RECIPES[name].config, `${name}/config.json`);
const input = (name: string, over: Partial<MemoryPlanInput> = {}): MemoryPlanInput => ({
  model: shape(name), quant: { quantization: 'nf4', blockSize: 64, doubleQuant: true }, lora: { r: 16, targetModules: LINEAR_MODULES },
  seqLen: 256, microBatch: 1, gradientCheckpointing: true, backend: 'wasm', ...over,
});
const wasmOnly = { heap: 3.9e9, hostTotal: 64e9, hostFree: 64e9 };

test('the plan grows with sequence, batch and rank; checkpointing and quantization shrink it', () => {
  const base = planMemory(input('smollm2-135m')).heapPeak;
  assert.ok(planMemory(input('smollm2-135m', { seqLen: 1024 })).heapPeak > base);
  assert.ok(planMemory(input('smollm2-135m', { microBatch: 4 })).heapPeak > base);
  assert.ok(planMemory(input('smollm2-135m', { lora: { r: 64, targetModules: LINEAR_MODULES } })).heapPeak > base);
  assert.ok(planMemory(input('smollm2-135m', { gradientCheckpointing: false })).heapPeak > base);
  assert.ok(planMemory(input('smollm2-135m', { quant: { quantization: 'none', blockSize: 64, doubleQuant: false } })).heapPeak > base);
  // The bf16 embedding lives on the host, once for a tied head, twice for TinyLlama's untied one.
  const tied = planMemory(input('smollm2-135m')).parts.find((p) => p.name === 'tables')!;
  assert.equal(tied.bytes, 49152 * 576 * 2);
  assert.equal(tied.where, 'host');
  assert.equal(planMemory(input('tinyllama-1.1b')).parts.find((p) => p.name === 'tables')!.bytes, 2 * 32000 * 2048 * 2);
});

test('on wasm the native kernels\' memory is a host part of the peak, growing with T; not on cpu or with them off', () => {
  const part = (over: Partial<MemoryPlanInput>) => planMemory(input('smollm2-135m', over)).parts.find((p) => p.name === 'nativeKernels');
  const at256 = part({})!;
  assert.equal(at256.where, 'host');
  assert.ok(at256.bytes > NATIVE_RUNTIME_BYTES, 'the fixed share plus per-call buffers');
  assert.ok(part({ seqLen: 1024 })!.bytes > at256.bytes, 'attention scores and the loss chunk grow with T');
  assert.equal(part({ backend: 'cpu' }), undefined);
  assert.equal(part({ nativeKernels: false }), undefined);
  const on = planMemory(input('smollm2-135m')), off = planMemory(input('smollm2-135m', { nativeKernels: false }));
  assert.equal(on.rssPeak - off.rssPeak, at256.bytes);
  assert.equal(on.loadPeak, off.loadPeak, 'the arenas fill while training, not while loading');
});

test('a run over the wasm heap is refused with its largest parts and a max_seq_len / micro_batch_size that fits', () => {
  const big = input('llama-3.2-1b', { seqLen: 8192, microBatch: 4 });
  assert.throws(() => checkMemoryPlan(big, 'models/llama', wasmOnly), (err: unknown) => {
    assert.ok(err instanceof MemoryPlanError);
    assert.match(err.message, /^models\/llama: this run does not fit in memory: the compute heap would reach [\d.]+ GB but the wasm heap stops at 3\.90 GB/);
    assert.match(err.message, /Largest parts: [^.]+ [\d.]+ GB/);
    const seq = Number(/data\.max_seq_len: (\d+)/.exec(err.message)?.[1]);
    assert.ok(seq > 0 && seq < 8192, err.message);
    // What it advises does fit.
    assert.equal(overBudget(planMemory({ ...big, seqLen: seq }), wasmOnly), undefined);
    assert.ok(overBudget(planMemory({ ...big, seqLen: seq + 64 }), wasmOnly));
    return true;
  });
  assert.equal(fittingSeqLen(input('smollm2-135m', { seqLen: 64 }), wasmOnly), 64);
  // The model alone over the budget: nothing fits, and the message says so.
  assert.throws(() => checkMemoryPlan(input('llama-3.2-3b'), 'm', { heap: 1e9, hostTotal: 64e9, hostFree: 64e9 }), /Nothing fits at this size/);
  // Machine RAM counts on every backend.
  assert.throws(() => checkMemoryPlan(input('llama-3.2-1b', { backend: 'cpu' }), 'm', { heap: Infinity, hostTotal: 1e9, hostFree: 1e9 }), /this machine has 1\.00 GB of RAM/);
  assert.equal(memoryBudget('cpu').heap, Infinity);
});

test('the lens shows the plan, and flags "over the wasm heap" with backend auto too', () => {
  const text = (backend: string, seq: number) => `model:\n  base: m\ndata:\n  train: d\n  max_seq_len: ${seq}\nlora:\n  r: 16\n  target_modules: all-linear\ntraining:\n  micro_batch_size: 4\n  backend: ${backend}\n`;
  for (const backend of ['auto', 'wasm']) {
    const cost = estimateCost(shape('llama-3.2-1b'), parse(text(backend, 8192), '/x').config);
    assert.equal(cost.memory.plan.overWasmHeap, true, backend);
    assert.equal(cost.memory.total, cost.memory.plan.rssPeak);
  }
  assert.equal(estimateCost(shape('llama-3.2-1b'), parse(text('cpu', 8192), '/x').config).memory.plan.overWasmHeap, false);
  assert.equal(estimateCost(shape('smollm2-135m'), parse(text('auto', 256), '/x').config).memory.plan.overWasmHeap, false);
});

test('the trainer refuses a run that does not fit before loading anything', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-preflight-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const model = join(dir, 'model');
  mkdirSync(model);
  // config.json of Llama-3.2-1B and an empty weights file: loading would fail on the file,
  // so the memory refusal proves that the check ran first.
  writeFileSync(join(model, 'config.json'), JSON.stringify(RECIPES['llama-3.2-1b'].config));
  writeFileSync(join(model, 'model.safetensors'), '');
  writeFileSync(join(dir, 'train.jsonl'), '{"text": "hello"}\n');
  writeFileSync(join(dir, 'run.qlora'), configText({
    model: { base: './model' }, lora: { r: 16, target_modules: 'all-linear' },
    data: { train: './train.jsonl', format: 'text', max_seq_len: 8192 },
    training: { max_steps: 1, micro_batch_size: 8, backend: 'wasm' }, output: { dir: './out' },
  }));
  const { config } = loadConfigFile(join(dir, 'run.qlora'));
  await assert.rejects(train(config, { onEvent: () => {} }), (err: unknown) => {
    assert.ok(err instanceof MemoryPlanError, String(err));
    assert.match(err.message, /does not fit in memory/);
    assert.match(err.message, /micro_batch_size|max_seq_len/);
    return true;
  });
});

test('Llama-3.2-3B at seq 256 on wasm: refused before any work, with a rank that fits', () => {
  assert.throws(() => checkMemoryPlan(input('llama-3.2-3b'), 'llama-3.2-3b', wasmOnly), (err: unknown) => {
    assert.ok(err instanceof MemoryPlanError);
    assert.match(err.message, /wasm heap stops at 3\.90 GB/);
    const r = Number(/lora\.r: (\d+)/.exec(err.message)?.[1]);
    assert.ok(r >= 1 && r < 16, err.message);
    assert.equal(overBudget(planMemory(input('llama-3.2-3b', { lora: { r, targetModules: LINEAR_MODULES } })), wasmOnly), undefined);
    return true;
  });
});

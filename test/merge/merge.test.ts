// `qlora merge` on small models made on the spot (no ../shared needed): the merged weights
// against an independent computation, both merge targets, Hugging Face and sharded bases and
// outputs, the output folder's layout, and every refusal writing nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { qlora } from '../helpers/cli';
import { expectedMerge, folderHash, maxAbsDiff, tinyBase, writeAdapter, SMALL } from './fixtures';
import { loadModel, readModelConfig } from '../../server/engine/formats/modelFolder';
import { writeHuggingFaceFolder } from '../../server/engine/formats/hfWriter';
import { readSafetensorsHeader, writeSafetensors } from '../../server/engine/formats/safetensors';
import type { WeightMap } from '../../server/engine/formats/types';
import { readAdapter } from '../../server/engine/lora/peft';
import { mergeAdapter, MergeCancelledError, MergeRefusedError, type MergeEvent } from '../../server/engine/merge';

const root = mkdtempSync(join(tmpdir(), 'qlora-merge-'));
const baseDir = tinyBase(join(root, 'base'));
const config = readModelConfig(baseDir);
const adapterDir = join(root, 'adapter');
const adapterTensors = writeAdapter(adapterDir, config, { baseModel: '../base' }); // relative: resolved against the adapter folder
const hfDir = join(root, 'hf-bf16');

test.after(() => rmSync(root, { recursive: true, force: true }));

const events = (stdout: string) => stdout.trim().split('\n').map((l) => JSON.parse(l) as MergeEvent | { type: 'error'; message: string });

/** Nothing but `keep` in root: no output, no temporary folder. */
function assertNothingWritten(keep: string[], label: string): void {
  const extra = readdirSync(root).filter((n) => !keep.includes(n));
  assert.deepEqual(extra, [], `${label}: left ${extra.join(', ')}`);
}

test('CLI: default base (relative to the adapter), --into dequantized by default; weights equal an independent merge; base and adapter untouched', async () => {
  const before = [folderHash(baseDir), folderHash(adapterDir)];
  const out = join(root, 'merged-dq');
  const r = qlora(['merge', '--adapter', adapterDir, '--out', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const ev = events(r.stdout);
  const start = ev[0] as Extract<MergeEvent, { type: 'start' }>;
  assert.equal(start.type, 'start');
  assert.equal(start.into, 'dequantized');
  assert.deepEqual(start.quantization, { quantization: 'nf4', blockSize: 64, doubleQuant: true });
  assert.equal(start.dtype, 'float32');
  assert.equal(start.scaling, 2);
  assert.equal(start.mergedModules, 2 * 7);
  assert.ok(ev.some((e) => e.type === 'log' && /read whole/.test(e.message)), 'says the llama2.c base is read whole');
  const progress = ev.filter((e) => e.type === 'progress');
  assert.equal(progress.length, start.tensors);
  assert.equal(progress.at(-1)!.bytesWritten, start.totalBytes);
  assert.equal(ev.at(-1)!.type, 'done');

  assert.deepEqual(readdirSync(out).sort(), ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).torch_dtype, 'float32');
  const merged = await loadModel(out);
  const base = await loadModel(baseDir);
  assert.deepEqual(merged.config, { ...base.config, bosTokenId: merged.config.bosTokenId, eosTokenId: merged.config.eosTokenId });
  assert.deepEqual(merged.tokenizer.encode('the ship sails'), base.tokenizer.encode('the ship sails'));
  const want = expectedMerge(base.weights, adapterTensors, 2, { quantization: 'nf4', block_size: 64, double_quant: true });
  const diff = maxAbsDiff(merged.weights, want);
  console.log(`# dequantized merge: max |merged - independent| = ${diff.toExponential(2)}`);
  assert.ok(diff < 1e-6, `${diff}`);
  assert.deepEqual([folderHash(baseDir), folderHash(adapterDir)], before);
  rmSync(out, { recursive: true, force: true });
});

test('CLI: --into original adds B A to the full-precision weights; rsLoRA scales by alpha / sqrt(r)', async () => {
  const rs = join(root, 'adapter-rslora');
  const tensors = writeAdapter(rs, config, { baseModel: baseDir, r: 8, alpha: 4, rslora: true, targets: ['q_proj', 'v_proj', 'down_proj'], seed: 3 });
  const out = join(root, 'merged-orig');
  try {
    const r = qlora(['merge', '--adapter', join(rs, 'adapter_config.json'), '--out', out, '--into', 'original']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /into the full-precision base/);
    const merged = await loadModel(out);
    const base = await loadModel(baseDir);
    const diff = maxAbsDiff(merged.weights, expectedMerge(base.weights, tensors, 4 / Math.sqrt(8), null));
    assert.ok(diff < 1e-6, `${diff}`);
    // Projections without an adapter are copied bit for bit.
    assert.deepEqual(merged.weights.get('model.layers.1.self_attn.k_proj.weight')!.data, base.weights.get('model.layers.1.self_attn.k_proj.weight')!.data);
  } finally {
    rmSync(rs, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  }
});

test('engine: a sharded bfloat16 Hugging Face base, sharded output; default dtype follows the base; equals the one-file merge', async () => {
  const m = await loadModel(baseDir);
  writeHuggingFaceFolder(hfDir, m, { dtype: 'BF16', maxShardBytes: 60_000 });
  assert.ok(existsSync(join(hfDir, 'model.safetensors.index.json')), 'the base is sharded');
  const seen: MergeEvent[] = [];
  const a = await mergeAdapter({ adapter: adapterDir, base: hfDir, out: join(root, 'sharded'), maxShardBytes: 100_000 }, (e) => seen.push(e));
  const b = await mergeAdapter({ adapter: adapterDir, base: hfDir, out: join(root, 'single') });
  try {
    assert.equal(a.summary.dtype, 'bfloat16');
    assert.ok(a.files.some((f) => f.endsWith('model.safetensors.index.json')) && a.files.length > 3, a.files.join(', '));
    for (const f of readdirSync(hfDir).filter((n) => n.startsWith('tokenizer'))) {
      assert.ok(readFileSync(join(hfDir, f)).equals(readFileSync(join(a.out, f))), `${f} copied as it is`);
    }
    const sharded = await loadModel(a.out);
    const single = await loadModel(b.out);
    assert.equal(maxAbsDiff(sharded.weights, single.weights), 0);
    assert.equal(readSafetensorsHeader(join(b.out, 'model.safetensors')).entries[0].dtype, 'BF16');
    // Merging the bf16 base in float32 equals merging its values independently, then rounding to bf16.
    const hf = await loadModel(hfDir);
    const want = expectedMerge(hf.weights, adapterTensors, 2, { quantization: 'nf4', block_size: 64, double_quant: true });
    let worst = 0;
    for (const [name, t] of want) {
      const got = single.weights.get(name)!.data;
      for (let i = 0; i < t.data.length; i++) worst = Math.max(worst, Math.abs(got[i] - t.data[i]) / Math.max(Math.abs(t.data[i]), 1e-3));
    }
    assert.ok(worst <= 2 ** -8, `relative ${worst}`);
    assert.equal(seen.filter((e) => e.type === 'progress').length, a.summary.tensors);
  } finally {
    rmSync(a.out, { recursive: true, force: true });
    rmSync(b.out, { recursive: true, force: true });
  }
});

test('engine: cancelling through the AbortSignal leaves nothing behind', async () => {
  const controller = new AbortController();
  const out = join(root, 'cancelled');
  await assert.rejects(mergeAdapter({ adapter: adapterDir, out, signal: controller.signal }, (e) => {
    if (e.type === 'progress' && e.done === 3) controller.abort();
  }), MergeCancelledError);
  assertNothingWritten(['base', 'adapter', 'hf-bf16'], 'cancel');
});

test('an existing output folder is replaced only with --force', () => {
  const out = join(root, 'existing');
  mkdirSync(out);
  writeFileSync(join(out, 'keep.txt'), 'mine');
  try {
    const r = qlora(['merge', '--adapter', adapterDir, '--out', out]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already exists and is not empty.*--force/);
    assert.deepEqual(readdirSync(out), ['keep.txt']);
    const f = qlora(['merge', '--adapter', adapterDir, '--out', out, '--force']);
    assert.equal(f.code, 0, f.stderr);
    assert.ok(!existsSync(join(out, 'keep.txt')) && existsSync(join(out, 'model.safetensors')));
    assertNothingWritten(['base', 'adapter', 'hf-bf16', 'existing'], '--force');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('refused with a clear message, writing nothing: mismatched base, corrupt adapter, output inside the base, and more', async () => {
  const other = tinyBase(join(root, 'other-base'), { ...SMALL, dim: 32, hiddenDim: 96 });
  const deeper = tinyBase(join(root, 'deeper-base'), { ...SMALL, nLayers: 1 });
  const bad = join(root, 'bad-adapter');
  const fresh = (spec: Partial<Parameters<typeof writeAdapter>[2]> = {}) => {
    rmSync(bad, { recursive: true, force: true });
    writeAdapter(bad, config, { baseModel: baseDir, ...spec });
  };
  const keep = ['base', 'adapter', 'hf-bf16', 'other-base', 'deeper-base', 'bad-adapter'];
  const cases: [string, () => void, string[], RegExp][] = [
    ['base with other shapes', () => fresh(), ['--base', other], /q_proj\.lora_A\.weight" has shape \[4, 64\] but the base's .* needs \[4, 32\].*another base/],
    ['base missing layers', () => fresh(), ['--base', deeper], /layer 1, but the base model .* has 1 layer:/],
    ['adapter missing a module', () => {
      fresh();
      const { tensors } = readAdapter(bad);
      tensors.delete('base_model.model.model.layers.1.mlp.up_proj.lora_B.weight');
      writeAdapterTensors(bad, tensors);
    }, [], /missing "base_model\.model\.model\.layers\.1\.mlp\.up_proj\.lora_B\.weight"/],
    ['truncated adapter file', () => {
      fresh();
      const f = join(bad, 'adapter_model.safetensors');
      truncateSync(f, statSync(f).size - 100);
    }, [], /adapter_model\.safetensors: .*(truncated|past the end)/],
    ['non-finite adapter value', () => {
      fresh();
      const { tensors } = readAdapter(bad);
      tensors.get('base_model.model.model.layers.0.self_attn.o_proj.lora_B.weight')!.data[3] = NaN;
      writeAdapterTensors(bad, tensors);
    }, [], /o_proj\.lora_B\.weight" holds a non-finite value .* corrupt/],
    ['adapter_config.json not JSON', () => { fresh(); writeFileSync(join(bad, 'adapter_config.json'), '{"peft_type": "LORA", '); }, [], /adapter_config\.json: invalid JSON/],
    ['rank in the config differs from the tensors', () => {
      fresh();
      const cfg = JSON.parse(readFileSync(join(bad, 'adapter_config.json'), 'utf8'));
      writeFileSync(join(bad, 'adapter_config.json'), JSON.stringify({ ...cfg, r: 8 }));
    }, [], /has shape \[4, 64\] .* with r = 8 needs \[8, 64\]/],
    ['output inside the base folder', () => fresh(), ['--out', join(baseDir, 'merged')], /inside the base model folder/],
    ['output inside the adapter folder', () => fresh(), ['--out', join(bad, 'merged')], /inside the adapter folder/],
    ['output that contains the base', () => fresh(), ['--out', root, '--force'], /contains the base model/],
    ['--into dequantized with no quantization record', () => fresh({ quant: null }), ['--into', 'dequantized'], /records none .* --into original/],
    ['base named by a hub id', () => fresh({ baseModel: 'meta-llama/Llama-2-7b-hf' }), [], /base_model_name_or_path .* is not at .*--base MODEL/],
    ['unsupported PEFT option', () => {
      fresh();
      const cfg = JSON.parse(readFileSync(join(bad, 'adapter_config.json'), 'utf8'));
      writeFileSync(join(bad, 'adapter_config.json'), JSON.stringify({ ...cfg, rank_pattern: { q_proj: 16 } }));
    }, [], /rank_pattern .* not supported/],
  ];
  const baseHash = folderHash(baseDir);
  for (const [label, setup, args, want] of cases) {
    setup();
    const adapterHash = folderHash(bad);
    const r = qlora(['merge', '--adapter', bad, '--out', join(root, 'out'), ...args, '--json']);
    assert.equal(r.code, 1, `${label}: exit code (${r.stderr})`);
    assert.match(r.stderr, want, label);
    const last = events(r.stdout).at(-1) as { type: string; refused?: boolean };
    assert.deepEqual([last.type, last.refused], ['error', true], label);
    console.log(`# ${label}: ${r.stderr.trim()}`);
    assertNothingWritten(keep, label);
    assert.equal(folderHash(bad), adapterHash, `${label}: adapter untouched`);
    assert.ok(!existsSync(join(baseDir, 'merged')));
  }
  assert.equal(folderHash(baseDir), baseHash);
  await assert.rejects(mergeAdapter({ adapter: bad, base: other, out: join(root, 'out') }), MergeRefusedError);
  for (const d of ['other-base', 'deeper-base', 'bad-adapter']) rmSync(join(root, d), { recursive: true, force: true });
});

/** Through the project's writer, so that the file itself is valid and only its content is wrong. */
function writeAdapterTensors(dir: string, tensors: WeightMap): void {
  writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { dtype: 'F32' });
}

// `qlora export` on a tiny model made on the spot (no ../shared, no llama.cpp needed): the
// files and keys it writes, the report it prints, and every refusal leaving nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gguf } from '@huggingface/gguf';
import { qlora } from '../helpers/cli';
import { readModelConfig } from '../../server/engine/formats/modelFolder';
import type { GgufExportEvent } from '../../server/engine/export/types';
import { tinyBase, writeAdapter, folderHash } from '../merge/fixtures';

const root = mkdtempSync(join(tmpdir(), 'qlora-export-cli-'));
test.after(() => rmSync(root, { recursive: true, force: true }));
const base = tinyBase(join(root, 'base'));
const config = readModelConfig(base);
const adapter = join(root, 'adapter');
writeAdapter(adapter, config, { baseModel: '../base', r: 4, alpha: 8, rslora: true });
const events = (stdout: string) => stdout.trim().split('\n').map((l) => JSON.parse(l) as GgufExportEvent | { type: 'error'; message: string });

test('export gguf --type q4_0: one tensor event each, report of the lossy tensors, keys as llama.cpp names them', async () => {
  const out = join(root, 'tiny-q4_0.gguf');
  const r = qlora(['export', 'gguf', '--model', base, '--out', out, '--type', 'q4_0', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const ev = events(r.stdout);
  const start = ev[0] as Extract<GgufExportEvent, { type: 'start' }>;
  const done = ev.at(-1) as Extract<GgufExportEvent, { type: 'done' }>;
  assert.equal(start.type, 'start');
  assert.equal(done.type, 'done');
  assert.equal(ev.filter((e) => e.type === 'tensor').length, start.tensors);
  assert.equal(done.bytes, readFileSync(out).length);
  assert.equal(done.bytes, start.totalBytes);
  const lossy = done.report.tensors.filter((t) => t.ggmlType !== 'f32');
  assert.ok(lossy.length >= config.numLayers * 7 && lossy.every((t) => t.rmse > 0 && t.rmse < t.rms), 'every projection reports an error below its scale');
  assert.ok(done.report.relativeRmse > 0.01 && done.report.relativeRmse < 0.2, `q4_0 relative RMSE ${done.report.relativeRmse}`);
  const parsed = await gguf(out, { allowLocalFile: true });
  const md = parsed.metadata as Record<string, unknown>;
  assert.equal(md['general.file_type'], 2);
  assert.equal(md['llama.attention.head_count_kv'], config.numKvHeads);
  assert.equal(md['tokenizer.ggml.model'], 'llama');
  assert.equal(parsed.tensorInfos.find((t) => t.name === 'blk.0.attn_q.weight')!.dtype, 2);
  assert.equal(parsed.tensorInfos.find((t) => t.name === 'blk.0.attn_norm.weight')!.dtype, 0);
});

test('export gguf --lora-only: llama.cpp adapter keys; rsLoRA alpha written as alpha * sqrt(r)', async () => {
  const out = join(root, 'lora.gguf');
  const r = qlora(['export', 'gguf', '--adapter', adapter, '--out', out, '--lora-only']);
  assert.equal(r.code, 0, r.stderr);
  const parsed = await gguf(out, { allowLocalFile: true });
  const md = parsed.metadata as Record<string, unknown>;
  assert.deepEqual([md['general.type'], md['adapter.type']], ['adapter', 'lora']);
  assert.ok(Math.abs((md['adapter.lora.alpha'] as number) - 8 * 2) < 1e-6);
  assert.deepEqual(parsed.tensorInfos.find((t) => t.name === 'blk.1.ffn_down.weight.lora_b')!.shape.map(Number), [4, config.hiddenSize]);
});

test('export refusals name the problem and leave nothing behind', () => {
  const existing = join(root, 'existing.gguf');
  writeFileSync(existing, 'keep');
  const before = folderHash(base);
  const cases: [string, string[], RegExp, number][] = [
    ['existing output', ['export', 'gguf', '--model', base, '--out', existing], /already exists: choose another name, or replace it \(--force\)/, 1],
    ['output inside the model', ['export', 'gguf', '--model', base, '--out', join(base, 'x.gguf')], /is inside .*base/, 1],
    ['not .gguf', ['export', 'gguf', '--model', base, '--out', join(root, 'x.bin')], /should end in \.gguf/, 1],
    ['lora-only without adapter', ['export', 'gguf', '--model', base, '--out', join(root, 'y.gguf'), '--lora-only'], /--lora-only exports an adapter/, 1],
    ['bad type', ['export', 'gguf', '--model', base, '--out', join(root, 'y.gguf'), '--type', 'q5_k'], /--type must be f32, f16, bf16, q8_0, q4_0, q4_1/, 2],
    ['unknown target', ['export', 'onnx'], /export what\? gguf \| ollama/, 2],
    ['ollama into a non-empty folder', ['export', 'ollama', '--model', base, '--out', adapter], /already exists and is not empty/, 1],
  ];
  for (const [label, args, want, code] of cases) {
    const r = qlora(args);
    assert.equal(r.code, code, `${label}: ${r.stderr}`);
    assert.match(r.stderr, want, label);
  }
  assert.equal(readFileSync(existing, 'utf8'), 'keep');
  assert.equal(folderHash(base), before);
  assert.ok(!existsSync(join(root, 'y.gguf')) && !existsSync(join(root, 'x.bin')));
  assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('.')), [], 'no temporary file left');
});

// `qlora export axolotl`: the README's example and every config fixture of the project,
// exported and read back as YAML 1.1 (the `yaml` package in 1.1 mode, and PyYAML's own
// implicit resolvers for every plain scalar), each key checked against the fields
// Axolotl 0.18.0 declares (fixtures/axolotl-0.18.0-fields.json, from its schemas).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { makeWorkspace } from '../config/workspace';
import { projectRoot } from '../helpers/shared';
import { qlora } from '../helpers/cli';
import { runConfig } from '../helpers/runConfig';
import { configText as e2eFixture } from '../e2e/fixture';
import { scaffoldConfig } from '../../extension/scaffold';
import { axolotlYamlFor } from '../../server/cli/exportAxolotl';
import { AxolotlExportError } from '../../server/config/axolotl/export';
import { AXOLOTL_NAMES } from '../../server/config/axolotl/names';
import { pyyamlType } from '../../server/config/axolotl/yaml11';
import { DEFAULT_SETTINGS, hover } from '../../language-server/service';
import { ALL_KEYS } from '../../server/config/schema';
import { writeTinyModel, TINY_MODEL } from '../../server/demo/tinyModel';
import { shipLogs } from '../../server/demo/corpus';

const FIELDS = JSON.parse(readFileSync(join(__dirname, 'fixtures/axolotl-0.18.0-fields.json'), 'utf8')) as {
  axolotl: string; topLevel: string[]; dataset: string[]; fsdpConfig: string[]; bnbConfigKwargs: string[];
};

function readmeExample(): string {
  const readme = readFileSync(join(projectRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Outgrow one machine'));
  const m = /```yaml\n([\s\S]*?)```/.exec(section);
  assert.ok(m, 'the README has a .qlora example in its Axolotl section');
  return m[1];
}

/** Every plain scalar of `text` (PyYAML's view) has the type the parsed document holds. */
function checkPyyamlTypes(text: string, label: string): number {
  let checked = 0;
  for (const line of text.split('\n')) {
    const m = /^\s*(?:- )?(?:([A-Za-z_][\w]*): )?(.+)$/.exec(line);
    if (!m || line.trimStart().startsWith('#') || m[2].endsWith(':')) continue;
    const raw = m[2];
    if (raw === '[]') continue;
    const parsed = parseYaml(line.trim().replace(/^- /, ''), { version: '1.1' }) as unknown;
    const value = m[1] ? (parsed as Record<string, unknown>)[m[1]] : parsed;
    const py = raw.startsWith('"') ? 'str' : pyyamlType(raw);
    const want = typeof value === 'boolean' ? 'bool' : typeof value === 'number' ? (Number.isInteger(value) && !raw.includes('.') ? 'int' : 'float') : value === null ? 'null' : 'str';
    assert.equal(py, want, `${label}: PyYAML reads ${JSON.stringify(raw)} (${m[1] ?? 'list item'}) as ${py}, not ${want}`);
    checked++;
  }
  return checked;
}

function checkAxolotlKeys(doc: Record<string, unknown>, label: string): void {
  for (const k of Object.keys(doc)) assert.ok(FIELDS.topLevel.includes(k), `${label}: ${k} is not a field of Axolotl ${FIELDS.axolotl}`);
  for (const list of ['datasets', 'test_datasets']) {
    for (const d of (doc[list] ?? []) as Array<Record<string, unknown>>) {
      for (const k of Object.keys(d)) assert.ok(FIELDS.dataset.includes(k), `${label}: ${list}[].${k} is not an SFTDataset field`);
    }
  }
  for (const k of Object.keys((doc.fsdp_config ?? {}) as object)) assert.ok(FIELDS.fsdpConfig.includes(k), `${label}: fsdp_config.${k}`);
  for (const k of Object.keys((doc.bnb_config_kwargs ?? {}) as object)) assert.ok(FIELDS.bnbConfigKwargs.includes(k), `${label}: bnb_config_kwargs.${k}`);
}

test('the README example and every fixture config export to YAML 1.1 that uses only Axolotl fields', () => {
  const ws = makeWorkspace();
  try {
    const tinyHf = './models/tiny';
    const fixtures: Record<string, string> = {
      readme: readmeExample().replace('./models/my-llama', tinyHf).replace('./data/train.jsonl', './data/chat.jsonl'),
      runConfig: runConfig(tinyHf, { maxSteps: 12, saveEvery: 6, evalEvery: 4 }).replace('./train.jsonl', './data/text.jsonl'),
      e2e: e2eFixture('nf4').replace(/base: .*/, `base: ${tinyHf}`).replace(/train: .*/, 'train: ./data/text.jsonl'),
      scaffold: scaffoldConfig({ model: tinyHf, data: './data/alpaca.jsonl', format: 'alpaca', outputDir: './runs/scaffolded' }),
    };
    writeFileSync(join(ws.dir, 'data', 'chat.jsonl'), JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] }) + '\n');
    writeFileSync(join(ws.dir, 'models', 'tiny', 'tokenizer_config.json'), JSON.stringify({ chat_template: '{% for m in messages %}{{ m.content }}{% endfor %}' }));
    for (const [name, text] of Object.entries(fixtures)) {
      const file = join(ws.dir, `${name}.qlora`);
      writeFileSync(file, text);
      const { yaml, config } = axolotlYamlFor(file, join(ws.dir, 'out', `${name}.yml`), { baseModel: 'HuggingFaceTB/SmolLM2-135M' });
      const back = parseYaml(yaml, { version: '1.1' }) as Record<string, unknown>;
      assert.deepEqual(back, JSON.parse(JSON.stringify(config)), `${name}: the YAML reads back as the config`);
      checkAxolotlKeys(back, name);
      assert.ok(checkPyyamlTypes(yaml, name) > 15, `${name}: scalars checked`);
      assert.equal(back.base_model, 'HuggingFaceTB/SmolLM2-135M');
      assert.equal(back.excess_length_strategy, 'truncate');
      assert.equal(typeof back.max_grad_norm, 'number', `${name}: max_grad_norm always written`);
      for (const d of back.datasets as Array<{ path: string }>) assert.match(d.path, /^\.\.\/data\//, `${name}: data path relative to the YAML`);
    }
    const readme = parseYaml(axolotlYamlFor(join(ws.dir, 'readme.qlora'), join(ws.dir, 'axolotl.yml'), { gpus: 4 }).yaml, { version: '1.1' }) as Record<string, unknown>;
    assert.equal(readme.adapter, 'qlora');
    assert.equal(readme.load_in_4bit, true);
    assert.equal(readme.lora_target_linear, true);
    assert.equal(readme.lora_alpha, 32);
    assert.equal(readme.val_set_size, 0.05);
    assert.equal(readme.learning_rate, 0.0002);
    assert.equal(readme.deepspeed, 'deepspeed_configs/zero2.json');
    assert.deepEqual(readme.datasets, [{ path: './data/chat.jsonl', ds_type: 'json', type: 'chat_template', field_messages: 'messages', roles_to_train: ['assistant'] }]);
  } finally {
    ws.cleanup();
  }
});

test('axolotl export: refusals name the key; keys without an equivalent warn; every schema key has an Axolotl name or none', () => {
  const ws = makeWorkspace();
  try {
    const write = (name: string, text: string) => { writeFileSync(join(ws.dir, name), text); return join(ws.dir, name); };
    const base = 'model:\n  base: ./models/tiny\ndata:\n  train: ./data/text.jsonl\n';
    assert.throws(() => axolotlYamlFor(write('alpha.qlora', `${base}lora:\n  alpha: 2.5\n`), join(ws.dir, 'a.yml')),
      (e: Error) => e instanceof AxolotlExportError && e.field === 'lora.alpha' && /integer/.test(e.message));
    writeTinyModel(join(ws.dir, 'models', 'l2c'), shipLogs(40, 1), { ...TINY_MODEL, nLayers: 1 });
    const l2c = write('l2c.qlora', 'model:\n  base: ./models/l2c\ndata:\n  train: ./data/text.jsonl\n');
    assert.throws(() => axolotlYamlFor(l2c, join(ws.dir, 'b.yml')), (e: Error) => e instanceof AxolotlExportError && e.field === 'model.base' && /--base-model/.test(e.message));
    assert.equal(axolotlYamlFor(l2c, join(ws.dir, 'b.yml'), { baseModel: 'org/model' }).config.base_model, 'org/model');
    const r = axolotlYamlFor(write('w.qlora', 'model:\n  base: ./models/tiny\n  block_size: 128\n  quantization: fp4\n  double_quant: false\n' +
      'data:\n  train: ./data/text.jsonl\n  validation: ./data/text.jsonl\ntraining:\n  backend: wasm\n  lr_scheduler: constant\n  warmup_steps: 5\n  eval_every: 0\n'),
    join(ws.dir, 'w.yml'), { multiGpu: 'fsdp' });
    assert.equal(r.warnings.length, 2, r.warnings.join('\n'));
    assert.match(r.warnings.join('\n'), /block_size 128.*64/);
    assert.match(r.warnings.join('\n'), /training\.backend/);
    assert.deepEqual(r.config.bnb_config_kwargs, { bnb_4bit_quant_type: 'fp4', bnb_4bit_use_double_quant: false });
    assert.equal(r.config.lr_scheduler, 'constant_with_warmup');
    assert.equal(r.config.eval_strategy, 'no');
    assert.match(r.yaml, /^eval_strategy: "no"$/m, 'a bare no would be a boolean in YAML 1.1');
    assert.equal(r.config.val_set_size, undefined, 'Axolotl refuses val_set_size with test_datasets');
    assert.equal(r.config.fsdp_version, 2);
    assert.equal((r.config.fsdp_config as Record<string, unknown>).transformer_layer_cls_to_wrap, 'LlamaDecoderLayer');
    for (const k of ALL_KEYS) assert.ok(k.path in AXOLOTL_NAMES, `${k.path} has an Axolotl name (or null) in names.ts`);
    for (const names of Object.values(AXOLOTL_NAMES)) for (const n of names ?? []) assert.ok(FIELDS.topLevel.includes(n.split(/[.[]/)[0]), `${n} is an Axolotl field`);
  } finally {
    ws.cleanup();
  }
});

test('qlora export axolotl writes the file, refuses to overwrite it without --force, and names bad flags', () => {
  const ws = makeWorkspace();
  try {
    const cfg = join(ws.dir, 'run.qlora');
    writeFileSync(cfg, 'model:\n  base: ./models/tiny\ndata:\n  train: ./data/text.jsonl\n');
    const out = join(ws.dir, 'axolotl.yml');
    const r = qlora(['export', 'axolotl', cfg, '--out', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((parseYaml(readFileSync(out, 'utf8'), { version: '1.1' }) as { adapter: string }).adapter, 'qlora');
    const again = qlora(['export', 'axolotl', cfg, '--out', out]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists: pass --force/);
    const bad = qlora(['export', 'axolotl', cfg, '--out', out, '--force', '--multi-gpu', 'mpi']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--multi-gpu must be deepspeed or fsdp/);
  } finally {
    ws.cleanup();
  }
});

test('hover on a .qlora key names its Axolotl field', () => {
  const ws = makeWorkspace();
  try {
    const text = 'lora:\n  r: 8\nmodel:\n  block_size: 64\n';
    const md = (line: number, character: number) => JSON.stringify(hover({ text, baseDir: ws.dir }, { line, character }, DEFAULT_SETTINGS));
    assert.match(md(1, 3), /Axolotl: `lora_r`/);
    assert.match(md(3, 4), /Axolotl: no equivalent/);
  } finally {
    ws.cleanup();
  }
});

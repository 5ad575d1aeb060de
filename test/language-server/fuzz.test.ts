// 10,000 random edits (insertions, deletions, replacements, random UTF-16 code units)
// sent to the real server as incremental didChange notifications, with completion,
// hover, code lens and code action requests between batches. The server must not crash,
// log an error or reject a request, every answer must be well-formed with ranges inside
// the document, and its final diagnostics must equal those of the pure service run on
// the client's copy of the text (so incremental sync kept both sides identical).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { TextDocument } from 'vscode-languageserver-textdocument';
import type { CodeAction, CodeLens, CompletionItem, Diagnostic, Hover, Range, TextDocumentContentChangeEvent } from 'vscode-languageserver';
import { DEFAULT_SETTINGS, diagnostics as pureDiagnostics } from '../../language-server/service';
import { GOOD_CONFIG, makeWorkspace, type Workspace } from '../config/workspace';
import { fileUri, LspClient } from './lspClient';

const EDITS = 10_000;
const BATCH = 50;
const SEED = Number(process.env.FUZZ_SEED ?? 20240607);
/** Past this length a big chunk is deleted, so the document stays editor-sized. */
const MAX_LENGTH = 6000;

/** mulberry32: a small seeded generator, so a failure can be replayed with FUZZ_SEED. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fragments an editor session produces, plus the awkward ones. */
const FRAGMENTS = [
  'model:', 'lora:', 'data:', 'training:', 'output:', '  base: ./models/tiny', '  r: ', '  target_modules: [', 'q_proj, ',
  ']', '\n', '\n  ', '  ', '- ', ': ', '#', '"', "'", '{', '}', ',', '0', '1e-3', '-1', '4096', 'nf4', 'all-linear', 'true',
  '~', '&a', '*a', '!!int ', '---\n', '\t', '\r\n', '\r', 'é', '😀', '\u0000', '\uFFFF', './data/alpaca.jsonl', '/dev/null',
  '../..', 'learning_rate: 0.5', '  epochs: 2\n  max_steps: 3', '? ', '|\n', '>-\n',
];

let ws: Workspace;
let client: LspClient;
before(async () => {
  ws = makeWorkspace();
  client = await LspClient.start(undefined, { rootDir: ws.dir });
});
after(() => {
  // After a failed assertion the server is still up; it must not keep the runner waiting.
  if (client.child.exitCode === null) client.child.kill();
  ws.cleanup();
});

function randomText(next: () => number): string {
  const kind = next();
  if (kind < 0.6) return FRAGMENTS[Math.floor(next() * FRAGMENTS.length)];
  // Random UTF-16 code units, lone surrogates and control characters included.
  let s = '';
  const n = 1 + Math.floor(next() * 8);
  for (let i = 0; i < n; i++) s += String.fromCharCode(Math.floor(next() * (next() < 0.7 ? 128 : 0x10000)));
  return s;
}

function randomEdit(doc: TextDocument, next: () => number): TextDocumentContentChangeEvent {
  const text = doc.getText();
  const at = (o: number) => doc.positionAt(o);
  if (text.length > MAX_LENGTH) {
    const start = Math.floor(next() * (text.length / 2));
    return { range: { start: at(start), end: at(start + text.length / 2) }, text: '' };
  }
  const r = next();
  const offset = Math.floor(next() * (text.length + 1));
  if (r < 0.02) return { text: next() < 0.8 ? GOOD_CONFIG : randomText(next) }; // full-text sync
  if (r < 0.55) return { range: { start: at(offset), end: at(offset) }, text: randomText(next) };
  const end = Math.min(text.length, offset + 1 + Math.floor(next() * 12));
  if (r < 0.8) return { range: { start: at(offset), end: at(end) }, text: '' };
  return { range: { start: at(offset), end: at(end) }, text: randomText(next) };
}

/** A range is well-formed for `doc`: inside it, start before end. */
function assertRangeIn(range: Range, doc: TextDocument, what: string): void {
  const lines = doc.getText().split(/\r\n|\r|\n/);
  for (const p of [range.start, range.end]) {
    assert.ok(Number.isInteger(p.line) && Number.isInteger(p.character) && p.line >= 0 && p.character >= 0, `${what}: ${JSON.stringify(range)}`);
    assert.ok(p.line < lines.length && p.character <= lines[p.line].length, `${what}: ${JSON.stringify(range)} outside the document`);
  }
  assert.ok(doc.offsetAt(range.start) <= doc.offsetAt(range.end), `${what}: start after end`);
}

test(`${EDITS} random edits through the server: no crash, no error, well-formed answers`, { timeout: 120_000 }, async () => {
  const next = rng(SEED);
  const uri = fileUri(join(ws.dir, 'fuzz.qlora'));
  let doc = TextDocument.create(uri, 'qlora', 1, GOOD_CONFIG);
  const texts = new Map<number, TextDocument>([[1, doc]]);
  let checkedPublications = 0;
  let requests = 0;
  let totalLength = 0;
  const first = client.nextDiagnostics(uri, 1);
  const started = performance.now();
  await client.open(uri, GOOD_CONFIG);
  await first;

  for (let sent = 0; sent < EDITS; ) {
    const batchEnd = Math.min(EDITS, sent + BATCH);
    for (; sent < batchEnd; sent++) {
      const change = randomEdit(doc, next);
      doc = TextDocument.update(TextDocument.create(uri, 'qlora', doc.version, doc.getText()), [change], doc.version + 1);
      texts.set(doc.version, doc);
      void client.change(uri, doc.version, [change]);
      totalLength += doc.getText().length;
    }
    // Requests after the batch see its last version: the server handles messages in order.
    const position = doc.positionAt(Math.floor(next() * (doc.getText().length + 1)));
    const other = doc.positionAt(Math.floor(next() * (doc.getText().length + 1)));
    const range = doc.offsetAt(position) <= doc.offsetAt(other) ? { start: position, end: other } : { start: other, end: position };
    const [completion, hover, lenses, actions] = await Promise.all([
      client.request<CompletionItem[]>('textDocument/completion', { textDocument: { uri }, position }),
      client.request<Hover | null>('textDocument/hover', { textDocument: { uri }, position }),
      client.request<CodeLens[]>('textDocument/codeLens', { textDocument: { uri } }),
      client.request<CodeAction[]>('textDocument/codeAction', { textDocument: { uri }, range, context: { diagnostics: [] } }),
    ]);
    requests += 4;
    assert.ok(Array.isArray(completion));
    for (const item of completion) {
      assert.equal(typeof item.label, 'string');
      if (item.textEdit && 'range' in item.textEdit) assertRangeIn(item.textEdit.range, doc, `completion ${item.label}`);
    }
    if (hover) {
      assert.equal(typeof (hover.contents as { value: unknown }).value, 'string');
      if (hover.range) assertRangeIn(hover.range, doc, 'hover');
    }
    assert.ok(lenses.length >= 2 && lenses.every((l) => typeof l.command?.title === 'string'));
    assert.ok(lenses.some((l) => l.command?.command === 'qlora.startTraining'), 'the start action is offered');
    for (const a of actions) {
      assert.equal(a.kind, 'quickfix');
      for (const e of a.edit!.changes![uri]) assertRangeIn(e.range, doc, `action ${a.title}`);
    }
    // Every publication so far: its ranges lie inside the text of the version it names.
    for (const p of client.published.splice(0)) {
      if (p.uri !== uri) continue;
      const version = texts.get(p.version!);
      assert.ok(version, `diagnostics for unknown version ${p.version}`);
      for (const d of p.diagnostics) {
        assertRangeIn(d.range, version, `diagnostic "${d.message}"`);
        assert.ok([1, 2, 3].includes(d.severity!) && typeof d.message === 'string' && d.message.length > 0);
      }
      checkedPublications++;
    }
    for (const v of texts.keys()) if (v < doc.version - BATCH) texts.delete(v);
  }

  const last = client.nextDiagnostics(uri, doc.version + 1);
  const finalDoc = TextDocument.update(doc, [{ range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, text: '' }], doc.version + 1);
  await client.change(uri, finalDoc.version, [{ range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, text: '' }]);
  const finalDiagnostics: Diagnostic[] = (await last).diagnostics;
  const seconds = (performance.now() - started) / 1000;
  assert.deepEqual(finalDiagnostics, pureDiagnostics({ text: finalDoc.getText(), baseDir: ws.dir }, DEFAULT_SETTINGS));

  console.log(
    `# fuzz: ${EDITS} edits (seed ${SEED}) and ${requests} requests in ${seconds.toFixed(1)} s ` +
      `(${Math.round(EDITS / seconds)} edits/s); ${checkedPublications} diagnostic publications checked; mean text ${Math.round(totalLength / EDITS)} chars`,
  );
  assert.equal(await client.stop(), 0, 'the server exits cleanly after shutdown');
  assert.deepEqual(client.logMessages.filter((m) => m.type === 1), [], 'no error logged');
  assert.equal(client.stderr, '', 'nothing on stderr (an unhandled rejection would print there)');
});

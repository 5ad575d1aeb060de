// The language server keeps serving whatever one document does to it (issue 20, findings
// 2 and 10): every handler is fed a dependency that throws (as a file read failing with
// EACCES, or the YAML parser overflowing its stack, would) and must answer empty, log the
// failure and answer properly on the next request; a check that throws becomes a
// diagnostic. Then, over the real spawned server: a data file it may not read, an unclosed
// flow mapping before 2,000 lines, 3,000-deep nesting, and a 900 KB file.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import {
  createConnection, createMessageConnection, ProposedFeatures, StreamMessageReader, StreamMessageWriter,
  type PublishDiagnosticsParams,
} from 'vscode-languageserver/node';
import { startLanguageServer, type LanguageService } from '../../language-server/server';
import { codeActions, codeLenses, complete, diagnostics, hover } from '../../language-server/service';
import { GOOD_CONFIG, makeWorkspace } from '../config/workspace';
import { fileUri, LspClient, OUR_SERVER } from './lspClient';

/** The real service, but each part throws the first `failures` times it is called. */
function throwingService(failures: number): LanguageService {
  const flaky = <F extends (...a: never[]) => unknown>(name: string, f: F): F => {
    let left = failures;
    return ((...a: never[]) => {
      if (left-- > 0) {
        const e = Object.assign(new Error(`EACCES: permission denied, open '/data/${name}.jsonl'`), { code: 'EACCES' });
        throw e;
      }
      return f(...a);
    }) as F;
  };
  return {
    diagnostics: flaky('diagnostics', diagnostics), complete: flaky('complete', complete), hover: flaky('hover', hover),
    codeLenses: flaky('codeLenses', codeLenses), codeActions: flaky('codeActions', codeActions),
  };
}

test('every handler answers empty when its dependency throws, logs why, and serves the next request', async () => {
  const ws = makeWorkspace();
  const toServer = new PassThrough();
  const toClient = new PassThrough();
  const server = createConnection(ProposedFeatures.all, new StreamMessageReader(toServer), new StreamMessageWriter(toClient));
  startLanguageServer(server, throwingService(1));
  const client = createMessageConnection(new StreamMessageReader(toClient), new StreamMessageWriter(toServer));
  const published: PublishDiagnosticsParams[] = [];
  const logs: string[] = [];
  let onPublish: (() => void) | undefined;
  client.onNotification('textDocument/publishDiagnostics', (p: PublishDiagnosticsParams) => { published.push(p); onPublish?.(); });
  client.onNotification('window/logMessage', (p: { message: string }) => { logs.push(p.message); });
  client.listen();
  const nextPublish = () => new Promise<PublishDiagnosticsParams>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no diagnostics published')), 10_000);
    onPublish = () => { clearTimeout(timer); onPublish = undefined; resolve(published[published.length - 1]); };
  });
  try {
    await client.sendRequest('initialize', { processId: null, rootUri: fileUri(ws.dir), capabilities: {} });
    await client.sendNotification('initialized', {});
    const uri = fileUri(join(ws.dir, 'run.qlora'));
    const text = `${GOOD_CONFIG.replace('r: 8', 'r: 8\n  rnak: 2')}`;

    let p = nextPublish();
    await client.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'qlora', version: 1, text } });
    const first = await p;
    assert.equal(first.diagnostics.length, 1);
    assert.equal(first.diagnostics[0].code, 'internal');
    assert.match(String(first.diagnostics[0].message), /could not check this file: EACCES/);
    p = nextPublish();
    await client.sendNotification('textDocument/didChange', { textDocument: { uri, version: 2 }, contentChanges: [{ text: `${text}\n` }] });
    const second = await p;
    assert.ok(second.diagnostics.some((d) => /rnak/.test(String(d.message))), 'the next check runs for real');

    const position = { line: 6, character: 2 };
    const range = { start: { line: 7, character: 2 }, end: { line: 7, character: 6 } }; // on `rnak`, which has a fix
    const requests: [string, unknown, (r: unknown) => boolean][] = [
      ['textDocument/completion', { textDocument: { uri }, position: { line: 9, character: 2 } }, (r) => Array.isArray(r) && r.length > 0],
      ['textDocument/hover', { textDocument: { uri }, position }, (r) => r !== null],
      ['textDocument/codeLens', { textDocument: { uri } }, (r) => Array.isArray(r) && r.length > 0],
      ['textDocument/codeAction', { textDocument: { uri }, range, context: { diagnostics: [] } }, (r) => Array.isArray(r) && r.length > 0],
    ];
    for (const [method, params, real] of requests) {
      const failed = await client.sendRequest(method, params);
      assert.ok(failed === null || (Array.isArray(failed) && failed.length === 0), `${method}: empty on failure, got ${JSON.stringify(failed)}`);
      const again = await client.sendRequest(method, params);
      assert.ok(real(again), `${method}: a real answer next time, got ${JSON.stringify(again)?.slice(0, 200)}`);
    }
    for (const what of ['completion', 'hover', 'code lens', 'code actions', 'checking']) {
      assert.ok(logs.some((l) => l.includes(`${what}`) && l.includes('EACCES')), `${what} failure logged: ${logs.join(' | ').slice(0, 500)}`);
    }
  } finally {
    client.dispose();
    server.dispose();
    ws.cleanup();
  }
});

test('the spawned server lives through an unreadable data file, an unclosed flow mapping, deep nesting and a huge file', async (t) => {
  const ws = makeWorkspace();
  // For root every file is readable; in a user namespace of its own the server is not root.
  const userNs = spawnSync('unshare', ['--user', 'true']).status === 0;
  if (!userNs) { ws.cleanup(); t.skip('unshare --user is not available: no unreadable file can be made for root'); return; }
  chmodSync(ws.dir, 0o755);
  writeFileSync(join(ws.dir, 'secret.jsonl'), '{"text": "x"}\n', { mode: 0o000 });
  chmodSync(join(ws.dir, 'secret.jsonl'), 0o000);
  const client = await LspClient.start(['unshare', '--user', ...OUR_SERVER], { rootDir: ws.dir });
  try {
    const docs: [string, string, RegExp][] = [
      ['unreadable', GOOD_CONFIG.replace('./data/alpaca.jsonl', './secret.jsonl'), /data\.train: \.\/secret\.jsonl cannot be read \(EACCES/],
      ['unclosed', `${GOOD_CONFIG.replace('[q_proj, k_proj, v_proj, o_proj]', '[q_proj, {')}${Array.from({ length: 2000 }, (_, i) => `  k${i}: v`).join('\n')}\n`, /this \[ is never closed/],
      ['deep', `${GOOD_CONFIG}extra:\n${Array.from({ length: 3000 }, (_, i) => `${' '.repeat(i + 1)}k${i}:`).join('\n').slice(0, 60_000)}\n`, /nesting deeper than 32 levels/],
      ['dashes', `${GOOD_CONFIG}extra:\n  ${'- '.repeat(3000)}x\n`, /nesting deeper than 32 levels/],
      ['huge', `${GOOD_CONFIG}# ${'x'.repeat(900 * 1024)}\n`, /more than the 65536 a \.qlora config may have/],
    ];
    for (const [name, text, expected] of docs) {
      const uri = fileUri(join(ws.dir, `${name}.qlora`));
      const published = client.nextDiagnostics(uri, 1, 30_000);
      await client.open(uri, text);
      const { diagnostics: ds } = await published;
      assert.ok(ds.some((d) => expected.test(String(d.message))), `${name}: ${JSON.stringify(ds.slice(0, 3))}`);
      assert.equal(client.child.exitCode, null, `${name}: the server is alive`);
    }
    const uri = fileUri(join(ws.dir, 'after.qlora'));
    const published = client.nextDiagnostics(uri, 1, 30_000);
    await client.open(uri, GOOD_CONFIG);
    await published;
    const items = await client.request<unknown[]>('textDocument/completion', { textDocument: { uri }, position: { line: 0, character: 0 } });
    assert.ok(Array.isArray(items) && items.length > 0, 'completion still works');
  } finally {
    if (client.child.exitCode === null) await client.stop();
    ws.cleanup();
  }
});

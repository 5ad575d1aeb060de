// The layering of the source tree, checked on every run: the engine imports nothing above
// it, nothing under server/ or language-server/ imports vscode, the webview imports only
// its own folder and server/protocol.ts, and there are no import circles. The rules are
// checked once on made-up graphs too, so that a rule that can never fire is caught.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { projectRoot } from '../helpers/shared';
import { importCycles, layeringViolations, readGraph, specifiersOf, type ImportGraph } from './imports';

const FOLDERS = ['server', 'language-server', 'extension', 'webview'];
const graph = readGraph(projectRoot, FOLDERS);

const show = (v: { file: string; imports: string; rule: string }) => `${v.file} -> ${v.imports}: ${v.rule}`;

test('the source tree keeps the layering rules', () => {
  assert.ok(graph.size > 100, `read ${graph.size} files`);
  const violations = layeringViolations(graph);
  assert.deepEqual(violations.map(show), []);
});

test('the source tree has no import circles', () => {
  assert.deepEqual(importCycles(graph), []);
});

test('the rules fire: an engine file importing server/config, vscode in the language server, a circle', () => {
  const made: ImportGraph = new Map([
    ['server/engine/train/trainer.ts', ['../../config/schema', './data', '@tensorflow/tfjs-core']],
    ['server/engine/train/data.ts', ['./trainer']],
    ['server/config/schema.ts', ['../engine/model/config']],
    ['server/engine/model/config.ts', []],
    ['language-server/server.ts', ['vscode', '../server/config/schema']],
    ['webview/main.ts', ['../server/protocol', '../extension/commands', 'uplot']],
    ['server/protocol.ts', []],
    ['extension/commands.ts', ['vscode']],
  ]);
  assert.deepEqual(layeringViolations(made).map(show), [
    'server/engine/train/trainer.ts -> server/config/schema.ts: the engine imports nothing above it (server/config, http, cli, protocol, demo)',
    'language-server/server.ts -> vscode: nothing under server/ or language-server/ imports vscode',
    'webview/main.ts -> extension/commands.ts: the webview imports only its own folder and server/protocol.ts',
    'webview/main.ts -> extension/commands.ts: only the extension imports the extension',
  ]);
  assert.deepEqual(importCycles(made), [['server/engine/train/data.ts', 'server/engine/train/trainer.ts']]);
});

test('import specifiers are read from every form, and not from comments', () => {
  const src = [
    "import { a } from './a';", "import type { B } from '../b';", "export { c } from './c';", "export * from './d';",
    "import './side-effect';", "const e = require('./e');", "const f = await import('./f');",
    "import {\n  g,\n  h,\n} from './gh';", "// import { x } from './commented';", "/* import { y } from './block'; */",
  ].join('\n');
  assert.deepEqual(specifiersOf(src), ['./a', '../b', './c', './d', './side-effect', './e', './f', './gh']);
});

test("the language server's bundle holds no tokenizer library and no TensorFlow.js", async () => {
  const esbuild = await import('esbuild');
  const r = await esbuild.build({
    absWorkingDir: projectRoot, entryPoints: ['language-server/main.ts'], bundle: true, platform: 'node', format: 'cjs',
    mainFields: ['module', 'main'], external: ['vscode'], write: false, metafile: true, logLevel: 'silent', outfile: 'ls.js',
  });
  const packages = [...new Set(Object.keys(r.metafile.inputs).filter((f) => f.includes('node_modules/'))
    .map((f) => f.split('node_modules/').pop()!.split('/').slice(0, f.includes('node_modules/@') ? 2 : 1).join('/')))].sort();
  assert.deepEqual(packages.filter((p) => /tokenizers|jinja|tensorflow|onnxruntime/.test(p)), [], packages.join(', '));
});

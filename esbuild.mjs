// One build script, several entry points. Each bundle is self-contained CommonJS for
// Node; `vscode` stays external because the editor provides it at run time.
import * as esbuild from 'esbuild';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');
mkdirSync(dist, { recursive: true });

const nodeEntries = {
  cli: 'server/cli.ts',
  extension: 'extension/extension.ts',
  languageServer: 'language-server/main.ts',
};

const entryPoints = Object.fromEntries(
  Object.entries(nodeEntries).filter(([, file]) => existsSync(join(root, file))),
);

await esbuild.build({
  absWorkingDir: root,
  entryPoints,
  outdir: dist,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  logLevel: 'warning',
  // tfjs-core's CommonJS entry registers no gradients; its ESM build does.
  mainFields: ['module', 'main'],
  external: ['vscode', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'onnxruntime-node'],
  // The `qlora` bin (dist/cli.js) trains in its own process: it starts with the training flags
  // of server/trainingNodeFlags.ts (env -S: coreutils, macOS and npm's Windows shims take it).
  banner: { js: '#!/usr/bin/env -S node --max-semi-space-size=64' },
});
// `npx qlora` runs dist/cli.js itself: it must stay executable. esbuild only sets the bit on a
// file it creates; rewriting one that lost it (a checkout, an npm ci, a copy) keeps it lost.
if (entryPoints.cli) chmodSync(join(dist, 'cli.js'), 0o755);

if (existsSync(join(root, 'webview/main.ts'))) {
  await esbuild.build({
    absWorkingDir: root,
    // A folder of its own: the webview's localResourceRoots is this folder and nothing else.
    entryPoints: { main: 'webview/main.ts' },
    outdir: join(dist, 'webview'),
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    sourcemap: true,
    logLevel: 'warning',
  });
}

// The wasm backend loads its .wasm binaries from beside the bundle (see server/engine/backend.ts).
const wasmDir = join(root, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
for (const f of readdirSync(wasmDir).filter((f) => f.endsWith('.wasm'))) {
  cpSync(join(wasmDir, f), join(dist, f));
}

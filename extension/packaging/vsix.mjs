// `npm run package [-- --target <platform>]`: builds qlora-studio.vsix for one platform, with
// that platform's onnxruntime-node CPU binaries inside it.
//
// Why per platform: the native GEMM provider (server/engine/kernels/native/ortProvider.ts) is
// what makes training fast on the CPU, and it needs onnxruntime-node's .node binding and its
// shared library. The bundles are self-contained, so the .vsix is built with --no-dependencies
// and carried none of it: an installed extension always trained on plain wasm. All platforms
// together are ~260 MB of binaries; one is 25-64 MB. So each .vsix is for one target (vsce's
// --target, which the Marketplace serves per platform) and holds only that target's files.
//
// Where: dist/node_modules/. dist/server.js loads the package with a plain require, and Node
// looks in the node_modules beside the requiring file first, so nothing in the engine changes.
// A target onnxruntime-node ships no binaries for (Intel macOS, Alpine, armhf, web) gets a
// .vsix without them, and this script says so: the engine then reports plain wasm itself.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

// vsce's target names; the host's own by default.
const TARGETS = ['win32-x64', 'win32-arm64', 'linux-x64', 'linux-arm64', 'linux-armhf', 'alpine-x64', 'alpine-arm64', 'darwin-x64', 'darwin-arm64', 'web'];
const target = option('--target') ?? `${process.platform}-${process.arch}`;
if (!TARGETS.includes(target)) {
  console.error(`package: --target must be one of ${TARGETS.join(', ')}; got ${JSON.stringify(target)}`);
  process.exit(2);
}
const out = option('--out') ?? 'qlora-studio.vsix';

const run = (cmd, cmdArgs) => {
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};

// What each target needs from the package's bin/napi-v6/<platform>/<arch>/: the binding and
// the library it links (macOS's tarball also carries a second, unlinked copy of the library;
// Windows' onnxruntime.dll comes with the DirectML libraries it was built against).
const NATIVE = {
  'linux-x64': ['linux/x64', ['onnxruntime_binding.node', 'libonnxruntime.so.1']],
  'linux-arm64': ['linux/arm64', ['onnxruntime_binding.node', 'libonnxruntime.so.1']],
  'darwin-arm64': ['darwin/arm64', ['onnxruntime_binding.node', 'libonnxruntime.1.dylib']],
  'win32-x64': ['win32/x64', ['onnxruntime_binding.node', 'onnxruntime.dll', 'DirectML.dll', 'dxcompiler.dll', 'dxil.dll']],
  'win32-arm64': ['win32/arm64', ['onnxruntime_binding.node', 'onnxruntime.dll', 'DirectML.dll', 'dxcompiler.dll', 'dxil.dll']],
};

// vsce builds the bundles itself (vscode:prepublish) before it packs; that build writes only
// its own files in dist/, so what is staged here stays.
const staged = join(root, 'dist', 'node_modules');
// Only this script writes dist/node_modules: a stale target's binaries are cleared first.
rmSync(staged, { recursive: true, force: true });

const ortDir = join(root, 'node_modules', 'onnxruntime-node');
const native = NATIVE[target];
if (!native) {
  console.log(`package: onnxruntime-node ships no CPU binaries for ${target}; this .vsix trains on plain wasm there`);
} else if (!existsSync(join(ortDir, 'package.json'))) {
  console.log('package: onnxruntime-node is not installed (an optional dependency); this .vsix trains on plain wasm');
} else {
  const [binDir, files] = native;
  const from = join(ortDir, 'bin', 'napi-v6', binDir);
  const missing = files.filter((f) => !existsSync(join(from, f)));
  if (missing.length) {
    console.error(`package: ${from} lacks ${missing.join(', ')}: reinstall onnxruntime-node (npm ci)`);
    process.exit(1);
  }
  const to = join(staged, 'onnxruntime-node');
  // The package's runtime JavaScript and manifest, without its install scripts and sources.
  mkdirSync(join(to, 'dist'), { recursive: true });
  for (const f of readdirSync(join(ortDir, 'dist')).filter((f) => f.endsWith('.js'))) cpSync(join(ortDir, 'dist', f), join(to, 'dist', f));
  const manifest = JSON.parse(readFileSync(join(ortDir, 'package.json'), 'utf8'));
  delete manifest.scripts; // nothing installs it in the extension's folder; no postinstall to mislead
  writeFileSync(join(to, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  mkdirSync(join(to, 'bin', 'napi-v6', binDir), { recursive: true });
  for (const f of files) cpSync(join(from, f), join(to, 'bin', 'napi-v6', binDir, f), { dereference: true });
  // onnxruntime-common: the Tensor class and env the binding is initialised with (CommonJS build).
  const commonDir = join(root, 'node_modules', 'onnxruntime-common');
  const common = join(staged, 'onnxruntime-common');
  cpSync(join(commonDir, 'package.json'), join(common, 'package.json'));
  cpSync(join(commonDir, 'dist', 'cjs'), join(common, 'dist', 'cjs'), { recursive: true, filter: (p) => !p.endsWith('.map') && !p.endsWith('.d.ts') });
  const bytes = (dir) => readdirSync(dir, { recursive: true }).map((f) => statSync(join(dir, f))).filter((s) => s.isFile()).reduce((n, s) => n + s.size, 0);
  console.log(`package: onnxruntime-node ${manifest.version} for ${target} staged in dist/node_modules (${(bytes(staged) / 2 ** 20).toFixed(1)} MiB)`);
}

run(join(root, 'node_modules', '.bin', 'vsce'), ['package', '--no-dependencies', '--skip-license', '--allow-missing-repository', '--target', target, '--out', out]);

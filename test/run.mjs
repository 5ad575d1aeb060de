// Runs every test/**/*.test.ts with Node's built-in runner (TypeScript through tsx).
// Node 20's --test does not expand globs, so the files are listed here.
//
// The webgpu tests (test/gpu/webgpu.test.ts) need a WebGPU adapter. Where Dawn finds none
// as the environment is, the whole run goes through test/gpu/with-mesa.sh, which supplies
// Mesa's llvmpipe (a software adapter, from Debian's packages unpacked into a cache), so
// that the GPU path is exercised on every machine that can have it. QLORA_MESA=0 turns
// that off; QLORA_REQUIRE_WEBGPU=1 (set by CI) makes a missing adapter an error instead
// of skipped tests.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const skipDirs = new Set(['node_modules', 'e2e', 'fixtures', '.cache']);
function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) { if (!skipDirs.has(name)) out.push(...collect(p)); }
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
const filter = process.argv.slice(2);
let files = collect(join(root, 'test')).map((f) => relative(root, f)).sort();
if (filter.length) files = files.filter((f) => filter.some((s) => f.includes(s)));
if (!files.length) { console.error('no test files matched'); process.exit(1); }

/** The probe's answer ({ok, adapter} or {ok: false, why}) with the command prefix given. */
function probe(prefix, env) {
  const r = spawnSync(prefix[0] ?? process.execPath, [...prefix.slice(1), ...(prefix.length ? [process.execPath] : []),
    '--import', 'tsx', 'test/gpu/probe.ts'], { cwd: root, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 300_000 });
  const line = (r.stdout ?? '').trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) return { ok: false, why: `the probe printed nothing (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}` };
  return JSON.parse(line);
}

let prefix = [];
if (files.some((f) => f.startsWith('test/gpu/webgpu'))) {
  const plain = probe([], {});
  if (plain.ok) {
    console.log(`# webgpu tests on ${plain.adapter}`);
  } else if (process.env.QLORA_MESA === '0') {
    console.log(`# webgpu tests will skip: ${plain.why}; QLORA_MESA=0 leaves Mesa's software adapter out`);
  } else {
    const mesa = probe(['bash', 'test/gpu/with-mesa.sh'], {});
    if (mesa.ok) {
      prefix = ['bash', 'test/gpu/with-mesa.sh'];
      console.log(`# webgpu tests on Mesa's software adapter (test/gpu/with-mesa.sh): ${mesa.adapter}; no GPU here: ${plain.why}`);
    } else {
      console.log(`# webgpu tests will skip: ${plain.why}; Mesa's software adapter could not be set up either: ${mesa.why}`);
    }
  }
  if (!prefix.length && !plain.ok && process.env.QLORA_REQUIRE_WEBGPU === '1') {
    console.error('QLORA_REQUIRE_WEBGPU=1 and no WebGPU adapter could be had: see above');
    process.exit(1);
  }
}
const command = [...prefix, process.execPath, '--import', 'tsx', '--test', '--test-concurrency=1', ...files];
const r = spawnSync(command[0], command.slice(1), { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);

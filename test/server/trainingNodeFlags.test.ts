// The training flags (server/trainingNodeFlags.ts) are declared once in TypeScript and copied
// where TypeScript cannot be imported: the bin's shebang (esbuild.mjs), npm's scripts and the
// benchmark runner. These tests keep the copies equal, check that the shebang runs as
// written, and that a flag the user set stays theirs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TRAINING_NODE_FLAGS, withTrainingFlags } from '../../server/trainingNodeFlags';

const root = join(__dirname, '..', '..');
const flags = TRAINING_NODE_FLAGS.join(' ');

test('the qlora bin starts with the training flags, and its shebang runs', (t) => {
  const cli = join(root, 'dist', 'cli.js');
  if (!existsSync(cli)) return t.skip('dist/cli.js is not built (npm run build)');
  assert.equal(readFileSync(cli, 'utf8').split('\n')[0], `#!/usr/bin/env -S node ${flags}`);
  if (process.platform === 'win32') return; // npm's .cmd shim reads the shebang there
  const r = spawnSync(cli, ['--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^usage: qlora/);
});

test('npm run qlora / demo and npm run bench pass the same flags', () => {
  const scripts = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts as Record<string, string>;
  assert.equal(scripts.qlora, `node ${flags} dist/cli.js`);
  assert.equal(scripts.demo, `node ${flags} dist/cli.js demo`);
  const runner = readFileSync(join(root, 'test', 'bench', 'run.mjs'), 'utf8');
  for (const f of TRAINING_NODE_FLAGS) assert.ok(runner.includes(`'${f}'`), `test/bench/run.mjs lacks ${f}`);
});

test('withTrainingFlags adds what is missing and keeps what the user set', () => {
  assert.deepEqual(withTrainingFlags([]), [...TRAINING_NODE_FLAGS]);
  assert.deepEqual(withTrainingFlags(['--enable-source-maps']), ['--enable-source-maps', ...TRAINING_NODE_FLAGS]);
  assert.deepEqual(withTrainingFlags(['--max-semi-space-size=16']), ['--max-semi-space-size=16']);
  assert.deepEqual(withTrainingFlags(['--max_semi_space_size=8']), ['--max_semi_space_size=8']);
});

test('V8 takes the flag: a process started with it grows new space past the default', () => {
  // 16 MB (the default semi-space) of young objects kept alive at once: with the flag,
  // new space holds them; without it, they are promoted and new space stays small.
  const probe = 'const keep = []; for (let i = 0; i < 400000; i++) keep.push({ i, s: "x" + i }); '
    + 'const ns = require("v8").getHeapSpaceStatistics().find((s) => s.space_name === "new_space"); console.log(ns.space_size); void keep.length;';
  const size = (args: string[]) => Number(spawnSync(process.execPath, [...args, '-e', probe], { encoding: 'utf8' }).stdout.trim());
  const withFlags = size([...TRAINING_NODE_FLAGS]), without = size([]);
  assert.ok(withFlags > without, `new space ${withFlags} with the flags, ${without} without`);
});

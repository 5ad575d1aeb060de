// `npm run build` leaves dist/cli.js executable however it found it (issue 20, finding 7):
// `npx qlora` runs the file itself, and esbuild keeps the mode of a file it overwrites.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../helpers/shared';

test('a build over a dist/cli.js without its execute bit makes it executable again, and it runs', () => {
  const cli = join(projectRoot, 'dist/cli.js');
  mkdirSync(join(projectRoot, 'dist'), { recursive: true });
  if (!existsSync(cli)) writeFileSync(cli, '');
  chmodSync(cli, 0o644); // as a checkout, an npm ci or a copy can leave it
  const build = spawnSync(process.execPath, [join(projectRoot, 'esbuild.mjs')], { cwd: projectRoot, encoding: 'utf8', timeout: 300_000 });
  assert.equal(build.status, 0, build.stderr);
  assert.equal(statSync(cli).mode & 0o111, 0o111, `dist/cli.js mode ${(statSync(cli).mode & 0o777).toString(8)}`);
  const run = spawnSync(cli, ['--help'], { cwd: projectRoot, encoding: 'utf8', timeout: 60_000 });
  assert.equal(run.error, undefined, String(run.error));
  assert.match(run.stdout + run.stderr, /usage: qlora/);
});

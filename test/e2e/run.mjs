// `npm run test:e2e`: installs the tools the suite needs (once; test/e2e/install.sh),
// packages the extension into a .vsix, and runs test/e2e/*.e2e.ts with Node's test runner.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
run('bash', ['test/e2e/install.sh', ...(process.env.CI ? ['--apt'] : [])]);
if (!existsSync('/usr/bin/chromium')) {
  console.error('test:e2e needs Debian\'s Chromium at /usr/bin/chromium: apt-get install -y chromium (or bash test/e2e/install.sh --apt)');
  process.exit(1);
}
run('npm', ['run', 'package']);
const files = readdirSync(join(root, 'test/e2e')).filter((f) => f.endsWith('.e2e.ts')).map((f) => join('test/e2e', f));
const filter = process.argv.slice(2);
run(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...files.filter((f) => !filter.length || filter.some((s) => f.includes(s)))]);

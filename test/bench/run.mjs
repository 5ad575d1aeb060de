// `npm run bench`: every benchmark in this folder, one after another, in one run.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = new URL('.', import.meta.url).pathname;
const only = process.argv.slice(2);
let failed = 0;
for (const f of readdirSync(dir).filter((f) => f.endsWith('.bench.ts')).sort()) {
  if (only.length && !only.some((s) => f.includes(s))) continue;
  console.log(`\n=== ${f}`);
  // With the flags the product's training process has (server/trainingNodeFlags.ts).
  const r = spawnSync(process.execPath, ['--max-semi-space-size=64', '--import', 'tsx', join(dir, f)], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);

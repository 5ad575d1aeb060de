// Time and peak memory of `qlora merge` on a generated Hugging Face model (default about
// 480 MB of float32 weights), per output dtype and merge target. Each merge runs in a child
// process that reports the kernel's resident high-water mark (VmHWM, reset at the start of
// the merge) above its resident set before it. Prints a table; asserts nothing.
//   node --import tsx test/bench/merge.bench.ts [--hidden 2048] [--intermediate 5632] [--layers 2]
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bigConfig, writeBigModel } from '../merge/bigModel';

const { values: a } = parseArgs({ options: {
  hidden: { type: 'string', default: '2048' }, intermediate: { type: 'string', default: '5632' }, layers: { type: 'string', default: '2' },
} });
const root = join(__dirname, '..', '..');
const MB = 1e6;
const dir = mkdtempSync(join(tmpdir(), 'qlora-merge-bench-'));
try {
  const c = bigConfig(Number(a.hidden), Number(a.intermediate), Number(a.layers));
  const t0 = Date.now();
  const weightBytes = writeBigModel(dir, c);
  console.log(`model: hidden ${c.hiddenSize}, intermediate ${c.intermediateSize}, ${c.numLayers} layers, vocab ${c.vocabSize}: ` +
    `${(weightBytes / MB).toFixed(0)} MB of float32 weights (generated in ${((Date.now() - t0) / 1000).toFixed(1)} s); adapter r 16 on all seven projections`);
  console.log('dtype     into         time s   MB/s in   peak added MB   largest tensor MB   largest layer MB   peak / (1.5 layer + out)');
  for (const [dtype, into] of [['float32', 'original'], ['float32', 'dequantized'], ['float16', 'dequantized'], ['bfloat16', 'dequantized']]) {
    const out = join(dir, 'out');
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', join(root, 'test/merge/memoryChild.ts'), join(dir, 'adapter'), out, dtype, into],
      { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    const m = JSON.parse(r.stdout.trim());
    const peak = m.peakRss - m.rssBefore;
    const bound = 1.5 * m.largestLayerBytes + m.outputBufferBytes;
    console.log(`${dtype.padEnd(9)} ${into.padEnd(12)} ${(m.elapsedMs / 1000).toFixed(1).padStart(6)}   ${(weightBytes / MB / (m.elapsedMs / 1000)).toFixed(0).padStart(7)}   ` +
      `${(peak / MB).toFixed(1).padStart(13)}   ${(m.largestTensorBytes / MB).toFixed(1).padStart(17)}   ${(m.largestLayerBytes / MB).toFixed(1).padStart(16)}   ${(peak / bound).toFixed(2).padStart(6)}`);
    rmSync(out, { recursive: true, force: true });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

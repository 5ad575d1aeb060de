// Runs one merge and reports its peak memory: the kernel's resident-set high-water mark
// (VmHWM), reset just before the merge starts, minus the resident set at that moment.
//   node --expose-gc --import tsx test/merge/memoryChild.ts ADAPTER OUT DTYPE INTO
import { readFileSync, writeFileSync } from 'node:fs';
import { mergeAdapter } from '../../server/engine/merge';
import { ENCODE_CHUNK } from '../../server/engine/merge/safetensorsStream';
import type { MergeDtype, MergeInto } from '../../server/engine/merge/types';

const kib = (key: string) => 1024 * Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))![1]);

async function main(): Promise<void> {
  const [adapter, out, dtype, into] = process.argv.slice(2);
  (globalThis as { gc?: () => void }).gc?.();
  const before = kib('VmRSS');
  let reset = true;
  try {
    writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM to the current RSS (Linux >= 4.0)
  } catch {
    reset = false;
  }
  const started = Date.now();
  const r = await mergeAdapter({ adapter, out, dtype: dtype as MergeDtype, into: into as MergeInto });
  const elapsedMs = Date.now() - started;
  const s = r.summary;
  process.stdout.write(JSON.stringify({
    rssBefore: before, peakRss: kib('VmHWM'), hwmReset: reset, elapsedMs,
    largestTensorBytes: s.largestTensorBytes, largestLayerBytes: s.largestLayerBytes, totalBytes: s.totalBytes,
    outputBufferBytes: dtype === 'float32' ? 0 : 2 * Math.min(s.largestTensorBytes / 4, ENCODE_CHUNK),
  }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exitCode = 1;
});

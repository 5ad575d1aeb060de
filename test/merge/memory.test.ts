// Issue 8: a merge streams. On a generated model with >= 100 MB of float32 weights, the
// peak resident memory a merge adds (measured by the kernel, VmHWM, in a child process)
// stays under 1.5x the largest layer (one transformer block, in float32) plus the output
// buffer; the figures are printed. For scale: reading the whole model would take all of it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../helpers/shared';
import { bigConfig, writeBigModel } from './bigModel';

interface Measured {
  rssBefore: number; peakRss: number; hwmReset: boolean; elapsedMs: number;
  largestTensorBytes: number; largestLayerBytes: number; totalBytes: number; outputBufferBytes: number;
}

const MB = 1e6;

test('peak memory of a merge of a 180 MB model < 1.5x the largest layer + the output buffer', { skip: process.platform !== 'linux' && 'needs /proc/self/status' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-merge-mem-'));
  try {
    const c = bigConfig(1024, 2816, 3);
    const weightBytes = writeBigModel(dir, c);
    assert.ok(weightBytes >= 100 * MB, `${weightBytes} bytes of weights`);
    for (const [dtype, into] of [['float32', 'original'], ['float16', 'dequantized']]) {
      const out = join(dir, `out-${dtype}`);
      const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', join(projectRoot, 'test/merge/memoryChild.ts'),
        join(dir, 'adapter'), out, dtype, into], { cwd: projectRoot, encoding: 'utf8', timeout: 300_000 });
      assert.equal(r.status, 0, r.stderr);
      const m = JSON.parse(r.stdout.trim()) as Measured;
      const peak = m.peakRss - m.rssBefore;
      const bound = 1.5 * m.largestLayerBytes + m.outputBufferBytes;
      console.log(`# ${dtype} --into ${into}: ${(weightBytes / MB).toFixed(0)} MB of float32 weights -> ${(m.totalBytes / MB).toFixed(0)} MB written in ` +
        `${(m.elapsedMs / 1000).toFixed(1)} s; peak added RSS ${(peak / MB).toFixed(1)} MB (VmHWM ${m.hwmReset ? 'reset at start' : 'not resettable'}); ` +
        `largest layer ${(m.largestLayerBytes / MB).toFixed(1)} MB, largest tensor ${(m.largestTensorBytes / MB).toFixed(1)} MB, ` +
        `output buffer ${(m.outputBufferBytes / MB).toFixed(1)} MB; bound ${(bound / MB).toFixed(1)} MB`);
      assert.ok(m.hwmReset, 'VmHWM could not be reset: the peak would include what happened before the merge');
      assert.ok(peak < bound, `peak ${peak} >= bound ${bound}`);
      rmSync(out, { recursive: true, force: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Records a real training run's events for the ETA test's fixture:
//   node --import tsx test/tools/recordRun.ts <steps> <out.jsonl> [wall|cpu]
// It trains the end-to-end fixture (the demo's tiny model on ship's logs) with an eval
// every 10 steps and a checkpoint every 20, so the first (slow) step, evals and saves
// are all in the record. Each record gets `time` when it is written, as the server's
// worker does. With `cpu` (the default) the clock is this process's CPU time instead of
// the wall clock: on a machine shared with other jobs the wall clock measures their load
// as much as the run, while the single-threaded wasm backend's CPU time is what an idle
// machine's wall clock would show. Step `elapsedMs` and `etaMs` (the trainer's mean since
// the start) are restated on the same clock.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkConfigText } from '../../server/config/load';
import { train } from '../../server/engine/train/trainer';
import type { RunRecord } from '../../server/protocol';
import { configText, writeWorkspace } from '../e2e/fixture';

const steps = Number(process.argv[2] ?? 60);
const out = process.argv[3] ?? 'recorded-run.jsonl';
async function main(): Promise<void> {
const dir = mkdtempSync(join(tmpdir(), 'qlora-record-'));
try {
  writeWorkspace(dir);
  const text = configText('nf4', steps);
  const { config } = checkConfigText(text, dir, join(dir, 'train.qlora'));
  const lines: string[] = [];
  let id = 1;
  const cpuClock = (process.argv[4] ?? 'cpu') === 'cpu';
  const wall0 = Date.now();
  const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
  const cpu0 = cpuMs();
  const now = () => (cpuClock ? wall0 + (cpuMs() - cpu0) : Date.now());
  let trainStart: number | undefined;
  let firstStep = 0;
  await train(config, {
    onEvent: (e) => {
      const time = now();
      if (e.type === 'start') { trainStart = time; firstStep = e.startStep; }
      let event = e;
      if (cpuClock && e.type === 'step' && trainStart !== undefined) {
        const elapsedMs = time - trainStart;
        event = { ...e, elapsedMs, etaMs: (elapsedMs / (e.step - firstStep)) * (e.totalSteps - e.step) };
      }
      lines.push(JSON.stringify({ ...event, id: id++, time } as RunRecord));
    },
  });
  writeFileSync(out, lines.join('\n') + '\n');
  console.log(`wrote ${lines.length} records to ${out}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
}

void main();

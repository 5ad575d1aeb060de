// Real SIGKILLs: a `qlora train` run killed at any point, including in the middle of
// writing a checkpoint, resumes with --resume from the newest complete checkpoint, and
// every folder named step-N it left is whole (trainer_state.json, readable adapter and
// optimizer). Five kills land at different points; the last resume runs to the end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../helpers/shared';
import { shipLogs } from '../../server/demo/corpus';
import { writeTinyModel, TINY_MODEL } from '../../server/demo/tinyModel';
import { readSafetensors } from '../../server/engine/formats/safetensors';
import { runConfig } from '../helpers/runConfig';

interface Ev { type: string; step?: number; startStep?: number; message?: string }

const MAX_STEPS = 30;

const config = (base: string) => runConfig(base, { maxSteps: MAX_STEPS, saveEvery: 1, evalEvery: 0 });

/** When to kill: on the nth event of a type (counted within this run) plus a delay, or
 *  as soon as a temporary checkpoint folder appears in checkpoints/. */
type KillAt = { on: 'checkpoint' | 'step'; nth: number; delayMs: number } | { on: 'tmp-appears' };

/** debris: entries starting with '.' in checkpoints/ right after the process ended that were not there before it started. */
interface RunResult { events: Ev[]; code: number | null; signal: NodeJS.Signals | null; killed: string | null; stderr: string; debris: string[] }

function debrisIn(ck: string): string[] {
  return existsSync(ck) ? readdirSync(ck).filter((n) => n.startsWith('.')).sort() : [];
}

function runCli(args: string[], ck: string, killAt: KillAt | null): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(projectRoot, 'server/cli.ts'), ...args], {
      cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const events: Ev[] = [];
    let buf = '', stderr = '', killed: string | null = null, debris: string[] = [];
    let watcher: FSWatcher | null = null;
    const counts: Record<string, number> = {};
    const before = new Set(debrisIn(ck));
    if (killAt?.on === 'tmp-appears') {
      // Armed from the start: the first new temporary entry is the first checkpoint being written.
      watcher = watch(ck, (_e, name) => {
        if (name && String(name).startsWith('.') && !before.has(String(name))) kill(`as soon as ${name} appeared`);
      });
    }
    const guard = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`qlora ${args.join(' ')}: no end in 60 s`)); }, 60_000);
    const kill = (why: string) => {
      if (killed || child.exitCode !== null) return;
      const last = events[events.length - 1];
      killed = `${why} (last event read: ${last ? `${last.type}${last.step !== undefined ? ` ${last.step}` : ''}` : 'none'})`;
      child.kill('SIGKILL');
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        const ev = JSON.parse(line) as Ev;
        events.push(ev);
        if (killed || !killAt) continue;
        counts[ev.type] = (counts[ev.type] ?? 0) + 1;
        if (killAt.on !== 'tmp-appears' && killAt.on === ev.type && counts[ev.type] === killAt.nth) {
          const { nth, delayMs } = killAt;
          const why = `${delayMs} ms after ${ev.type} ${ev.step} (#${nth} of this run)`;
          if (delayMs === 0) kill(why); else setTimeout(() => kill(why), delayMs);
        }
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => { stderr += s; });
    child.on('exit', () => {
      // Look at the folder the moment the process is gone, before anything else runs.
      debris = debrisIn(ck).filter((n) => !before.has(n));
      watcher?.close();
    });
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      resolve({ events, code, signal, killed, stderr, debris });
    });
    child.on('error', reject);
  });
}

/** step-N folders, each checked whole; returns the newest step, or 0 if none. */
function checkComplete(ck: string): number {
  let newest = 0;
  for (const name of readdirSync(ck)) {
    const m = /^step-(\d+)$/.exec(name);
    if (!m) continue;
    const dir = join(ck, name);
    assert.ok(existsSync(join(dir, 'trainer_state.json')), `${name} has trainer_state.json`);
    assert.ok(existsSync(join(dir, 'adapter_config.json')), `${name} has adapter_config.json`);
    assert.doesNotThrow(() => readSafetensors(join(dir, 'adapter_model.safetensors')), `${name}/adapter_model.safetensors reads`);
    assert.doesNotThrow(() => readSafetensors(join(dir, 'optimizer.safetensors')), `${name}/optimizer.safetensors reads`);
    newest = Math.max(newest, Number(m[1]));
  }
  return newest;
}

test('SIGKILLed runs, some in the middle of writing a checkpoint, resume from the previous complete one', async () => {
  const modelDir = mkdtempSync(join(tmpdir(), 'qlora-tiny-'));
  const dir = mkdtempSync(join(tmpdir(), 'qlora-kill-'));
  try {
    writeTinyModel(modelDir, shipLogs(200, 1), { ...TINY_MODEL, nLayers: 2 });
    writeFileSync(join(dir, 'train.jsonl'), shipLogs(120, 3).map((text) => JSON.stringify({ text })).join('\n') + '\n');
    const cfg = join(dir, 'run.qlora');
    writeFileSync(cfg, config(modelDir));
    const ck = join(dir, 'runs/r/checkpoints');

    const plan: KillAt[] = [
      { on: 'checkpoint', nth: 3, delayMs: 0 },
      { on: 'checkpoint', nth: 2, delayMs: 10 },
      { on: 'step', nth: 2, delayMs: 0 },
      { on: 'checkpoint', nth: 2, delayMs: 30 },
      { on: 'tmp-appears' },
    ];
    const covered = new Set<number>();
    let firstCheckpoint = 0;
    let done: Ev | undefined;
    for (let round = 0; round <= plan.length; round++) {
      const resume = round > 0;
      const expectedStart = resume ? checkComplete(ck) : 0;
      if (resume) assert.ok(expectedStart > 0, 'a complete checkpoint exists before --resume');
      const killAt: KillAt | null = plan[round] ?? null;
      const r = await runCli(['train', cfg, ...(resume ? ['--resume'] : []), '--json'], ck, killAt);
      const steps = r.events.filter((e) => e.type === 'step').map((e) => e.step!);
      const start = r.events.find((e) => e.type === 'start');
      assert.ok(start, `round ${round}: a start event\n${r.stderr}`);
      assert.equal(start.startStep, expectedStart, `round ${round}: starts at the newest complete checkpoint`);
      if (steps.length) assert.equal(steps[0], expectedStart + 1, `round ${round}: first step`);
      assert.deepEqual(steps, steps.map((_, i) => expectedStart + 1 + i), `round ${round}: consecutive steps`);
      if (resume) {
        const log = r.events.find((e) => e.type === 'log' && /resuming from/.test(e.message ?? ''));
        assert.match(log?.message ?? '', new RegExp(`step-${expectedStart} at step ${expectedStart}$`));
        steps.forEach((s) => covered.add(s));
      }
      if (killAt) {
        assert.ok(r.killed, `round ${round}: the run was still going when the kill was due (exit ${r.code})`);
        assert.equal(r.signal, 'SIGKILL');
        const after = checkComplete(ck);
        if (round === 0) firstCheckpoint = after;
        console.log(`# kill ${round + 1}: ${r.killed}; ${resume ? `resumed from step-${expectedStart}, ` : ''}` +
          `printed steps ${steps[0] ?? '-'}..${steps[steps.length - 1] ?? '-'}; ` +
          `new debris right after the kill: ${r.debris.length ? r.debris.join(', ') : 'none'}; newest complete now step-${after}`);
      } else {
        assert.equal(r.code, 0, r.stderr);
        done = r.events.find((e) => e.type === 'done');
        console.log(`# final run: resumed from step-${expectedStart}, printed steps ${steps[0]}..${steps[steps.length - 1]}, ` +
          `done at step ${done?.step}; leftover entries starting with '.': ${debrisIn(ck).join(', ') || 'none'}`);
      }
    }
    assert.equal(done?.step, MAX_STEPS, 'the run finished at step 30');
    assert.ok(existsSync(join(ck, `step-${MAX_STEPS}`, 'trainer_state.json')));
    assert.deepEqual(debrisIn(ck), [], 'half-written checkpoints left by the kills are swept by the next save');
    const want = Array.from({ length: MAX_STEPS - firstCheckpoint }, (_, i) => firstCheckpoint + 1 + i);
    assert.deepEqual([...covered].sort((a, b) => a - b), want, `resumed runs cover steps ${firstCheckpoint + 1}..${MAX_STEPS}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(modelDir, { recursive: true, force: true });
  }
});

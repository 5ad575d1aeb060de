// One `qlora train CONFIG --json` run as a child process, its events collected; and what
// the benchmark reads off them: steady-state tokens/s, memory, and the losses per step.
// Legend: B batch, T sequence, N = B*T tokens, C hidden size, V vocabulary, r LoRA rank.
import { spawn } from 'node:child_process';
import type { StartEvent, StepEvent, TrainEvent } from '../../../server/engine/train/events';
import type { BenchSpec } from './benchModel';

export interface TrainRun {
  start: StartEvent;
  steps: StepEvent[];
  wallSeconds: number;
  /** The process had not exited 30 s after its last event and was killed (Dawn keeping Node alive). */
  killedAfterDone: boolean;
}

/** Runs `node CLI train CONFIG --json` and resolves with its events; stderr passes through. */
export function runTrain(cli: string, config: string, env: NodeJS.ProcessEnv = process.env): Promise<TrainRun> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [cli, 'train', config, '--json'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    const events: TrainEvent[] = [];
    let buffered = '';
    let killedAfterDone = false;
    let killTimer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        const e = JSON.parse(line) as TrainEvent;
        events.push(e);
        if (e.type === 'done') {
          killTimer = setTimeout(() => { killedAfterDone = true; child.kill('SIGKILL'); }, 30_000);
        }
        if (e.type === 'step' && (e.step === 1 || e.step % 10 === 0)) {
          process.stderr.write(`  ${config}: step ${e.step}/${e.totalSteps} loss ${e.loss.toFixed(4)} ${e.tokensPerSec.toFixed(0)} tok/s\n`);
        }
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(killTimer);
      const start = events.find((e): e is StartEvent => e.type === 'start');
      const error = events.find((e) => e.type === 'error');
      if ((code !== 0 && !killedAfterDone) || !start) {
        reject(new Error(`qlora train ${config} exited with ${code}${error && 'message' in error ? `: ${error.message}` : ''}`));
        return;
      }
      const steps = events.filter((e): e is StepEvent => e.type === 'step');
      resolve({ start, steps, wallSeconds: (performance.now() - t0) / 1000, killedAfterDone });
    });
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2 : NaN;
}

/**
 * Matrix-multiply FLOPs of one QLoRA step. The frozen projections need y and dx only (no
 * dW): 2 products of 2NKM each; LoRA's two thin products run forward, for dx and for
 * dA/dB; attention's two T x T products run once forward and twice backward; the frozen
 * head runs forward and for dx. The peer script counts the same.
 */
export function stepFlops(s: BenchSpec, B: number, T: number, r: number): number {
  const N = B * T, C = s.dim, kv = (C / s.nHeads) * s.nKvHeads;
  const shapes: Array<[number, number]> = [[C, C], [kv, C], [kv, C], [C, C], [s.hiddenDim, C], [s.hiddenDim, C], [C, s.hiddenDim]];
  let perLayer = 0;
  for (const [o, i] of shapes) perLayer += 2 * (2 * N * i * o) + 3 * (2 * N * r * (i + o));
  perLayer += 3 * 2 * (2 * B * s.nHeads * T * T * (C / s.nHeads));
  return s.nLayers * perLayer + 2 * (2 * N * C * s.vocabSize);
}

export interface RunSummary {
  device: string;
  steps: number;
  /** Median over steps after the first `warmup`. */
  tokensPerSec: number;
  msPerStep: number;
  /** Bytes the TensorFlow.js backend held after a step, largest seen. */
  backendBytes: number;
  firstLoss: number;
  lastLoss: number;
  wallSeconds: number;
  killedAfterDone: boolean;
}

export function summarize(run: TrainRun, warmup = 3): RunSummary {
  const steady = run.steps.slice(Math.min(warmup, Math.max(run.steps.length - 1, 0)));
  const tokensPerSec = median(steady.map((e) => e.tokensPerSec));
  const msPerStep = median(steady.slice(1).map((e, i) => e.elapsedMs - steady[i].elapsedMs));
  return {
    device: run.start.device,
    steps: run.steps.length,
    tokensPerSec,
    msPerStep,
    backendBytes: Math.max(...run.steps.map((e) => e.memoryBytes)),
    firstLoss: run.steps[0]?.loss ?? NaN,
    lastLoss: run.steps[run.steps.length - 1]?.loss ?? NaN,
    wallSeconds: run.wallSeconds,
    killedAfterDone: run.killedAfterDone,
  };
}

/** Step-by-step loss agreement of two runs: the largest |a - b| / |b|. */
export function lossAgreement(a: TrainRun, b: TrainRun, tolerance: number) {
  const n = Math.min(a.steps.length, b.steps.length);
  const rows = Array.from({ length: n }, (_, i) => ({
    step: a.steps[i].step, a: a.steps[i].loss, b: b.steps[i].loss, rel: Math.abs(a.steps[i].loss - b.steps[i].loss) / Math.abs(b.steps[i].loss),
  }));
  const largest = Math.max(...rows.map((r) => r.rel));
  return { steps: n, largestRelativeDifference: largest, tolerance, pass: n > 0 && largest <= tolerance, rows };
}

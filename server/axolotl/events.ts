// Axolotl's output as this project's training events, so the side panel, metrics.jsonl and
// `qlora train --json` show an Axolotl run as they show our own. Two sources:
// - the live log (Hugging Face Trainer's per-step dicts, printed as Python dict literals,
//   values as numbers or, in newer transformers, as strings; tqdm's `12/100 [00:30<03:40`;
//   "Saving model checkpoint to .../checkpoint-N"; a Python traceback on failure), and
// - `trainer_state.json` (its `log_history`), for a run read after the fact.
// The export sets logging_steps: 1, so each loss dict is one optimizer step.
import type { CheckpointEvent, DoneEvent, ErrorEvent, EvalEvent, LogEvent, StepEvent, TrainEvent } from '../engine/train/events';

type Dict = Record<string, number | string>;

/** A Python dict literal of numbers and strings (what the Trainer prints), or undefined. */
export function parsePythonDict(text: string): Dict | undefined {
  const m = /\{[^{}]*\}/.exec(text);
  if (!m) return undefined;
  const json = m[0]
    .replace(/'((?:[^'\\]|\\.)*)'/g, (_, s: string) => JSON.stringify(s.replace(/\\'/g, "'")))
    .replace(/\b(nan|NaN|inf|-inf|Infinity|-Infinity)\b/g, (s) => `"${s}"`);
  try {
    const v = JSON.parse(json) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Dict) : undefined;
  } catch {
    return undefined;
  }
}

const num = (v: number | string | undefined): number => (v === undefined ? NaN : typeof v === 'number' ? v : Number(v));

/** tqdm's `<mm:ss` or `<h:mm:ss` remaining time, in ms. */
function etaOf(line: string): number | undefined {
  const m = /<(?:(\d+):)?(\d+):(\d+)/.exec(line);
  return m ? ((Number(m[1] ?? 0) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 : undefined;
}

export interface ConverterOptions {
  /** Optimizer steps of the run as exported (max_steps, else estimated), until tqdm says. */
  totalSteps: number;
  /** Where the adapter lands (output_dir), for the done event. */
  outputDir: string;
  /** Tokens per optimizer step (micro batch x accumulation x sequence length), for tokens/s. */
  tokensPerStep?: number;
  now?: () => number;
}

export class AxolotlEventConverter {
  private step = 0;
  private totalSteps: number;
  private etaMs = 0;
  private lastStepAt: number;
  private readonly started: number;
  private traceback: string[] | undefined;
  private failed = false;
  private readonly now: () => number;

  constructor(private readonly o: ConverterOptions) {
    this.totalSteps = o.totalSteps;
    this.now = o.now ?? Date.now;
    this.started = this.lastStepAt = this.now();
  }

  /** The events one line of Axolotl's output makes (often none). */
  feed(line: string): TrainEvent[] {
    const out: TrainEvent[] = [];
    const progress = /(\d+)\/(\d+) \[/.exec(line);
    if (progress) {
      this.totalSteps = Number(progress[2]) || this.totalSteps;
      this.etaMs = etaOf(line) ?? this.etaMs;
    }
    if (this.traceback) {
      this.traceback.push(line);
      // A traceback ends with its exception line: `SomeError: message` at column 0.
      if (/^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.*/.test(line)) {
        out.push(this.error(line));
        this.traceback = undefined;
      }
      return out;
    }
    if (line.startsWith('Traceback (most recent call last):')) {
      this.traceback = [line];
      return out;
    }
    const saved = /Saving model checkpoint to (\S+checkpoint-(\d+))/.exec(line);
    if (saved) {
      out.push({ type: 'checkpoint', step: Number(saved[2]), path: saved[1] } satisfies CheckpointEvent);
      return out;
    }
    const d = line.includes('{') ? parsePythonDict(line) : undefined;
    if (d && 'loss' in d && !('eval_loss' in d)) out.push(this.stepEvent(d));
    else if (d && 'eval_loss' in d) out.push({ type: 'eval', step: this.step, evalLoss: num(d.eval_loss), tokens: 0 } satisfies EvalEvent);
    else if (d && 'train_runtime' in d) {
      out.push({ type: 'log', level: 'info', message: `Axolotl finished: train_loss ${num(d.train_loss)}, ${num(d.train_runtime)} s` } satisfies LogEvent);
    } else if (/\bWARNING\b/.test(line)) out.push({ type: 'log', level: 'warning', message: line.trim() } satisfies LogEvent);
    return out;
  }

  /** The closing event once the process exited with `code`. */
  finish(code: number): TrainEvent[] {
    if (this.traceback) {
      const last = this.traceback.filter((l) => l.trim()).pop() ?? 'Axolotl failed';
      this.traceback = undefined;
      return [this.error(last)];
    }
    if (this.failed) return [];
    if (code !== 0) return [this.error(`axolotl exited with code ${code}`)];
    return [{ type: 'done', step: this.step, adapter: this.o.outputDir, stopped: false } satisfies DoneEvent];
  }

  private stepEvent(d: Dict): StepEvent {
    this.step = 'step' in d ? num(d.step) : this.step + 1;
    const t = this.now();
    const dt = Math.max(1, t - this.lastStepAt);
    this.lastStepAt = t;
    return {
      type: 'step', step: this.step, totalSteps: Math.max(this.totalSteps, this.step), epoch: num(d.epoch),
      loss: num(d.loss), lr: num(d.learning_rate), gradNorm: num(d.grad_norm),
      tokensPerSec: this.o.tokensPerStep ? (this.o.tokensPerStep * 1000) / dt : 0,
      memoryBytes: 0, numTensors: 0, elapsedMs: t - this.started, etaMs: this.etaMs,
    };
  }

  private error(message: string): ErrorEvent {
    this.failed = true;
    return { type: 'error', step: this.step, message: `Axolotl: ${message.trim()}` };
  }
}

interface TrainerState {
  global_step?: number;
  max_steps?: number;
  log_history?: Array<Record<string, number>>;
}

/** The step and eval events of a finished (or checkpointed) Axolotl run, from its trainer_state.json. */
export function eventsFromTrainerState(state: TrainerState): TrainEvent[] {
  const total = state.max_steps ?? state.global_step ?? 0;
  const out: TrainEvent[] = [];
  for (const h of state.log_history ?? []) {
    if (typeof h.step !== 'number') continue;
    if ('loss' in h) {
      out.push({ type: 'step', step: h.step, totalSteps: total, epoch: h.epoch ?? NaN, loss: h.loss, lr: h.learning_rate ?? NaN,
        gradNorm: h.grad_norm ?? NaN, tokensPerSec: 0, memoryBytes: 0, numTensors: 0, elapsedMs: 0, etaMs: 0 });
    } else if ('eval_loss' in h) {
      out.push({ type: 'eval', step: h.step, evalLoss: h.eval_loss, tokens: 0 });
    }
  }
  return out;
}

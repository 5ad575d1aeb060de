// A checkpoint is one self-describing folder, checkpoints/step-N/: the adapter in PEFT
// layout, the optimizer's moments, and trainer_state.json (step, data position, RNG
// state, best eval loss, the resolved config). It is written under a temporary name and
// renamed when complete, and trainer_state.json is written last, so a folder named
// step-N with that file is always whole; anything else is debris from a killed run.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../formats/safetensors';
import type { WeightMap } from '../formats/types';
import type { LoraAdapter } from '../lora/adapter';
import { writeAdapter, type BaseQuantization } from '../lora/peft';
import type { RngState } from '../rng';
import type { BatchPosition } from './batching';
import type { AdamW, AdamWState } from './optimizer';

export const TRAINER_STATE = 'trainer_state.json';
const OPTIMIZER_FILE = 'optimizer.safetensors';

export interface TrainerState {
  step: number;
  totalSteps: number;
  batcher: BatchPosition;
  dropoutRng: RngState;
  bestEvalLoss: number | null;
  /** The resolved .qlora config the run was started with. */
  config: unknown;
  /** Identifies the training examples, so a resume against other data is refused. */
  dataFingerprint: string;
}

export function checkpointsDir(outputDir: string): string {
  return join(outputDir, 'checkpoints');
}

export async function saveCheckpoint(outputDir: string, state: TrainerState, adapter: LoraAdapter, optimizer: AdamW,
  baseModel: string, baseQuantization: BaseQuantization): Promise<string> {
  const root = checkpointsDir(outputDir);
  mkdirSync(root, { recursive: true });
  const final = join(root, `step-${state.step}`);
  const tmp = join(root, `.step-${state.step}.tmp`);
  removeCheckpointDebris(outputDir);
  await writeAdapter(tmp, adapter, baseModel, baseQuantization);
  const opt = await optimizer.getState();
  const tensors: WeightMap = new Map();
  opt.m.forEach((m, i) => tensors.set(`m.${i}`, { shape: [m.length], data: m }));
  opt.v.forEach((v, i) => tensors.set(`v.${i}`, { shape: [v.length], data: v }));
  writeSafetensors(join(tmp, OPTIMIZER_FILE), tensors, { dtype: 'F32', metadata: { step: String(opt.step) } });
  writeFileSync(join(tmp, TRAINER_STATE), JSON.stringify(state, null, 2) + '\n');
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  return final;
}

/**
 * The temporary names this module and writeAdapter use: `.step-N.tmp` (a checkpoint being
 * written), `..step-N.tmp.tmp-PID[.old]` (its adapter's own temporary folder) and, in
 * output.dir, `.adapter.tmp-PID[.old]`. Only these are ever deleted: a user's hidden file
 * beside them is not ours.
 */
const CHECKPOINT_DEBRIS = /^\.{1,2}step-\d+\.tmp(\.tmp-\d+(\.old)?)?$/;
const ADAPTER_DEBRIS = /^\.adapter\.tmp-\d+(\.old)?$/;

/**
 * Removes what a killed run left half-written in output.dir (never complete, never read);
 * called when a run starts, so debris of a kill before the first checkpoint does not wait
 * for the next save. Returns the names removed.
 */
export function removeCheckpointDebris(outputDir: string): string[] {
  const removed: string[] = [];
  const sweep = (dir: string, pattern: RegExp) => {
    if (!existsSync(dir)) return;
    for (const n of readdirSync(dir)) {
      if (!pattern.test(n)) continue;
      rmSync(join(dir, n), { recursive: true, force: true });
      removed.push(n);
    }
  };
  sweep(checkpointsDir(outputDir), CHECKPOINT_DEBRIS);
  sweep(outputDir, ADAPTER_DEBRIS);
  return removed;
}

/** The newest complete checkpoint folder, or undefined. */
export function newestCheckpoint(outputDir: string): string | undefined {
  const root = checkpointsDir(outputDir);
  if (!existsSync(root)) return undefined;
  const steps = readdirSync(root)
    .map((n) => /^step-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => !!m && existsSync(join(root, m[0], TRAINER_STATE)))
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a);
  return steps.length ? join(root, `step-${steps[0]}`) : undefined;
}

export function readTrainerState(dir: string): TrainerState {
  return JSON.parse(readFileSync(join(dir, TRAINER_STATE), 'utf8')) as TrainerState;
}

export function readOptimizerState(dir: string, step: number, count: number): AdamWState {
  const { tensors } = readSafetensors(join(dir, OPTIMIZER_FILE));
  const get = (k: string) => {
    const t = tensors.get(k);
    if (!t) throw new Error(`${join(dir, OPTIMIZER_FILE)}: missing ${k}`);
    return t.data;
  };
  return { step, m: Array.from({ length: count }, (_, i) => get(`m.${i}`)), v: Array.from({ length: count }, (_, i) => get(`v.${i}`)) };
}

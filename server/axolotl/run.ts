// `qlora train --engine axolotl`: the same .qlora run on Axolotl, where `axolotl` is on
// PATH. The config is exported beside the run (output.dir/axolotl.yml), `axolotl train`
// runs in a child process, and its output becomes this project's events (events.ts).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TrainEvent } from '../engine/train/events';
import { AxolotlEventConverter } from './events';

export class AxolotlMissingError extends Error {
  constructor() {
    super('the axolotl command is not on PATH. Install Axolotl where the GPUs are (`pip install axolotl`, with PyTorch and CUDA), ' +
      'or export the run with `qlora export axolotl CONFIG.qlora --out axolotl.yml` and run `axolotl train axolotl.yml` there.');
    this.name = 'AxolotlMissingError';
  }
}

/** The axolotl executable on PATH (or QLORA_AXOLOTL), or undefined. */
export function findAxolotl(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.QLORA_AXOLOTL) return existsSync(env.QLORA_AXOLOTL) ? env.QLORA_AXOLOTL : undefined;
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const p = join(dir, 'axolotl');
    if (existsSync(p)) return p;
  }
  return undefined;
}

export interface AxolotlRun {
  /** The exported YAML text and where the run writes. */
  yaml: string;
  outputDir: string;
  totalSteps: number;
  tokensPerStep: number;
  onEvent: (e: TrainEvent) => void;
  shouldStop?: () => boolean;
  env?: NodeJS.ProcessEnv;
}

/** Runs `axolotl train` on the exported config; resolves with its exit code once the events are out. */
export async function runAxolotl(r: AxolotlRun): Promise<number> {
  const exe = findAxolotl(r.env);
  if (!exe) throw new AxolotlMissingError();
  mkdirSync(r.outputDir, { recursive: true });
  const yamlFile = join(r.outputDir, 'axolotl.yml');
  writeFileSync(`${yamlFile}.tmp`, r.yaml);
  renameSync(`${yamlFile}.tmp`, yamlFile);
  const converter = new AxolotlEventConverter({ totalSteps: r.totalSteps, outputDir: r.outputDir, tokensPerStep: r.tokensPerStep });
  const child = spawn(exe, ['train', yamlFile], { cwd: r.outputDir, env: { ...process.env, ...r.env, PYTHONUNBUFFERED: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = (stream: NodeJS.ReadableStream) => {
    // tqdm redraws with carriage returns: each redraw is a line of its own.
    const rl = createInterface({ input: stream });
    rl.on('line', (l) => { for (const part of l.split('\r')) for (const e of converter.feed(part)) r.onEvent(e); });
    return new Promise<void>((done) => rl.once('close', done));
  };
  const stop = setInterval(() => { if (r.shouldStop?.()) child.kill('SIGINT'); }, 500);
  const [code] = await Promise.all([
    new Promise<number>((done) => child.once('close', (c, signal) => done(c ?? (signal ? 130 : 1)))),
    lines(child.stdout), lines(child.stderr),
  ]);
  clearInterval(stop);
  for (const e of converter.finish(code)) r.onEvent(e);
  return code;
}

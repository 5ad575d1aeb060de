// The training process: one run, in a child process of the server so that the server
// answers while it computes and survives whatever the run does (a crash, the wasm heap
// running out). It appends every event to the run's metrics.jsonl itself, before the
// trainer goes on, so a step's line is on disk before the checkpoint that covers it.
// The server is told by IPC that lines were added and reads them from the file.
import { closeSync, existsSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { constants, setPriority } from 'node:os';
import { join } from 'node:path';
import { checkConfigText, ConfigError } from '../config/load';
import { train } from '../engine/train/trainer';
import { trainSpec } from '../config/trainSpec';
import type { TrainEvent } from '../engine/train/events';
import type { RunRecord } from '../protocol';

export interface WorkerJob {
  configText: string;
  baseDir: string;
  configFile: string;
  resume: boolean;
  maxSteps?: number;
  metricsFile: string;
  /** Id of the first record this process appends. */
  firstEventId: number;
  /** Its appearance asks for a checkpoint and a stop at the end of the current step. */
  stopFile: string;
}

/** Messages from the worker to the server. */
export type WorkerMessage = { kind: 'appended'; lastId: number; rssBytes: number; tensorBytes: number | null };

/**
 * Training takes every core it is given, and on a small machine it then starves the
 * editor: in the e2e workbench (2 cores) the renderer got a third of the CPU time its
 * tasks needed and a step reached the Metrics view 0.3-0.8 s late. Below-normal priority
 * (nice 10) lets the editor go first and costs training nothing on an otherwise idle
 * machine. Set here, before the engine starts its threads: on Linux a nice value is per
 * thread and inherited by the threads created after it.
 */
function yieldToTheEditor(): void {
  try {
    setPriority(constants.priority.PRIORITY_BELOW_NORMAL);
  } catch (e) {
    process.stderr.write(`qlora worker: training at normal priority (${(e as Error).message})\n`);
  }
}

export async function runWorker(job: WorkerJob): Promise<number> {
  yieldToTheEditor();
  // Without the server nobody reads what this process writes, and a restarted server may
  // already resume the run: stop before the next line or step. Signals and IPC wait for
  // the event loop, which a training step does not give back, so the parent's pid is
  // checked synchronously (POSIX re-parents an orphan); 'disconnect' covers the rest.
  const parent = process.ppid;
  const orphaned = () => process.ppid !== parent;
  process.on('disconnect', () => process.exit(70));
  let stopRequested = false;
  process.on('message', (m: { kind?: string }) => { if (m?.kind === 'stop') stopRequested = true; });

  const fd = openSync(job.metricsFile, 'a');
  let nextId = job.firstEventId;
  let lastStep = 0;
  let tensorBytes: number | null = null;
  const record = (e: TrainEvent) => {
    if (orphaned()) process.exit(70);
    if (e.type === 'step') { lastStep = e.step; tensorBytes = e.memoryBytes; }
    if (e.type === 'start') lastStep = e.startStep;
    // The process's resident size beside TensorFlow.js's byte count: the Metrics view shows both.
    const event: TrainEvent = e.type === 'step' ? { ...e, rssBytes: process.memoryUsage.rss() } : e;
    const line = Buffer.from(JSON.stringify({ ...event, id: nextId++, time: Date.now() } satisfies RunRecord) + '\n');
    for (let off = 0; off < line.length;) off += writeSync(fd, line, off);
    const msg: WorkerMessage = { kind: 'appended', lastId: nextId - 1, rssBytes: process.memoryUsage.rss(), tensorBytes };
    process.send?.(msg);
  };
  try {
    const { config } = checkConfigText(job.configText, job.baseDir, job.configFile);
    mkdirSync(config.output.dir, { recursive: true });
    await train(trainSpec(config), {
      maxSteps: job.maxSteps, resume: job.resume, onEvent: record,
      shouldStop: () => {
        if (orphaned()) process.exit(70);
        return stopRequested || existsSync(job.stopFile);
      },
    });
    return 0;
  } catch (e) {
    const message = e instanceof ConfigError ? e.message : (e as Error).message;
    if (process.env.QLORA_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    try {
      record({ type: 'error', step: lastStep, message });
    } catch (writeError) {
      // metrics.jsonl itself cannot be written (a full disk, say): the run cannot go on and
      // nobody would hear of it there; stderr reaches the server, which fails the run with it.
      process.stderr.write(`qlora worker: cannot write ${job.metricsFile}: ${(writeError as Error).message}; the run stops (${message})\n`);
    }
    return 1;
  } finally {
    closeSync(fd);
  }
}

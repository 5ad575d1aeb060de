import { mkdirSync, readFileSync } from 'node:fs';
import { RunRecorder } from '../http/runRecorder';
import { parse, UsageError } from './common';
import { loadConfigFile } from '../config/load';
import { formatDiagnostic } from '../config/diagnostics';
import { train } from '../engine/train/trainer';
import { trainSpec } from '../config/trainSpec';
import type { TrainEvent } from '../engine/train/events';
import { trainOnAxolotl } from './trainAxolotl';

export const trainUsage = 'qlora train CONFIG.qlora [--max-steps N] [--resume] [--json] [--engine qlora|axolotl]';

export async function trainCommand(args: string[]): Promise<void> {
  const { values: v, positionals } = parse(args, {
    'max-steps': { type: 'string' }, resume: { type: 'boolean' }, json: { type: 'boolean' }, engine: { type: 'string' },
  }, true);
  if (v.engine !== undefined && v.engine !== 'qlora' && v.engine !== 'axolotl') throw new UsageError(`--engine must be qlora or axolotl (got '${v.engine}')`);
  if (positionals.length !== 1) throw new UsageError('expected one CONFIG.qlora file');
  const maxSteps = v['max-steps'] === undefined ? undefined : Number(v['max-steps']);
  if (maxSteps !== undefined && !(Number.isInteger(maxSteps) && maxSteps > 0)) {
    throw new UsageError(`--max-steps must be a positive integer (got '${v['max-steps']}')`);
  }
  const file = positionals[0];
  if (v.engine === 'axolotl') return trainOnAxolotl(file, !!v.json);
  const { config, diagnostics } = loadConfigFile(file);
  for (const d of diagnostics) process.stderr.write(formatDiagnostic(file, d) + '\n');
  mkdirSync(config.output.dir, { recursive: true });
  // run.json + metrics.jsonl in output.dir: the editor's Runs view lists this run too.
  const record = RunRecorder.begin({ config, configText: readFileSync(file, 'utf8'), configFile: file, resume: !!v.resume, maxSteps });
  const json = !!v.json;
  let stopRequested = false;
  const onSignal = () => { stopRequested = true; };
  // Until the trainer starts (the model loads in one synchronous stretch, during which no
  // handler could run) Ctrl+C keeps its default and ends the process at once: nothing is
  // written before the first step. From the start on, it stops after a step and a checkpoint.
  const print = json ? (e: TrainEvent) => process.stdout.write(JSON.stringify(e) + '\n') : humanPrinter();
  const onEvent = (e: TrainEvent) => {
    if (e.type === 'start') {
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
    }
    record.event(e);
    print(e);
  };
  try {
    await train(trainSpec(config), { maxSteps, resume: !!v.resume, onEvent, shouldStop: () => stopRequested });
  } catch (e) {
    onEvent({ type: 'error', step: -1, message: (e as Error).message });
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function humanPrinter(): (e: TrainEvent) => void {
  const tty = process.stdout.isTTY;
  const time = (ms: number) => {
    const s = Math.round(ms / 1000);
    return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
  };
  return (e) => {
    switch (e.type) {
      case 'start':
        process.stdout.write(`training on ${e.backend} (${e.device}): ${e.trainableParams.toLocaleString('en-US')} trainable of ` +
          `${e.totalParams.toLocaleString('en-US')} parameters, ${e.trainExamples} examples` +
          `${e.validationExamples ? ` (+${e.validationExamples} held out)` : ''}, ${e.totalSteps} steps\n`);
        break;
      case 'step': {
        const width = 24, done = Math.round((width * e.step) / e.totalSteps);
        const line = `[${'#'.repeat(done)}${'.'.repeat(width - done)}] step ${e.step}/${e.totalSteps}  loss ${e.loss.toFixed(4)}  ` +
          `lr ${e.lr.toExponential(2)}  |g| ${e.gradNorm.toFixed(3)}  ${e.tokensPerSec.toFixed(0)} tok/s  ETA ${time(e.etaMs)}`;
        process.stdout.write(tty ? `\r${line}` : `${line}\n`);
        break;
      }
      case 'eval': process.stdout.write(`${tty ? '\n' : ''}eval at step ${e.step}: loss ${e.evalLoss.toFixed(4)}\n`); break;
      case 'checkpoint': process.stdout.write(`${tty ? '\n' : ''}checkpoint: ${e.path}\n`); break;
      case 'log': process.stdout.write(`${e.message}\n`); break;
      case 'done': process.stdout.write(`${tty ? '\n' : ''}${e.stopped ? 'stopped' : 'done'} at step ${e.step}; adapter: ${e.adapter}\n`); break;
      case 'error': break; // the command's own error line says it
    }
  };
}

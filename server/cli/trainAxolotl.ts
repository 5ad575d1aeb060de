// `qlora train --engine axolotl CONFIG.qlora`: exports the run (export.ts) and runs it on
// Axolotl where it is installed, printing the same events as our own trainer.
import { join } from 'node:path';
import { axolotlYamlFor } from './exportAxolotl';
import { loadConfigFile } from '../config/load';
import { runAxolotl } from '../axolotl/run';
import type { TrainEvent } from '../engine/train/events';

export async function trainOnAxolotl(file: string, json: boolean): Promise<void> {
  const { config } = loadConfigFile(file);
  const { yaml, warnings } = axolotlYamlFor(file, join(config.output.dir, 'axolotl.yml'));
  const print = (e: TrainEvent) => process.stdout.write(json ? JSON.stringify(e) + '\n' : human(e));
  for (const w of warnings) print({ type: 'log', level: 'warning', message: w });
  let stop = false;
  const onSignal = () => { stop = true; };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const t = config.training;
  try {
    const code = await runAxolotl({
      yaml, outputDir: config.output.dir, totalSteps: t.max_steps ?? 0, onEvent: print, shouldStop: () => stop,
      tokensPerStep: t.micro_batch_size * t.gradient_accumulation_steps * config.data.max_seq_len,
    });
    if (code !== 0) process.exitCode = 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function human(e: TrainEvent): string {
  switch (e.type) {
    case 'step': return `step ${e.step}/${e.totalSteps} loss ${e.loss.toFixed(4)} lr ${e.lr.toExponential(2)} grad ${e.gradNorm.toFixed(3)}\n`;
    case 'eval': return `eval step ${e.step}: loss ${e.evalLoss.toFixed(4)}\n`;
    case 'checkpoint': return `checkpoint ${e.path}\n`;
    case 'done': return `done: ${e.adapter}\n`;
    case 'error': return `error: ${e.message}\n`;
    case 'log': return `${e.level}: ${e.message}\n`;
    default: return '';
  }
}

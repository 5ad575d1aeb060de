// Settings that are fine one by one but contradict each other. Only keys the file
// actually sets can conflict: a default never argues with an explicit value.
import type { ResolvedConfig } from './schema';
import { entryDeletion, type ConfigSource, type Report } from './source';


export function checkConflicts(config: ResolvedConfig, source: ConfigSource, report: Report): void {
  const set = (path: string) => source.first.get(path);
  const removal = (path: string) => {
    const occ = set(path)!;
    return { title: `Remove ${path}`, edits: [entryDeletion(occ, source)] };
  };

  const epochs = set('training.epochs');
  const maxSteps = set('training.max_steps');
  if (epochs && maxSteps) {
    report(maxSteps.keyRange, 'error', 'conflict', 'training.epochs and training.max_steps are both set: keep one', {
      key: 'training.max_steps',
      fixes: [removal('training.epochs'), removal('training.max_steps')],
    });
  }

  const quantizationOff = config.model.quantization === 'none' && set('model.quantization');
  const doubleQuant = set('model.double_quant');
  if (quantizationOff && doubleQuant && config.model.double_quant) {
    report(doubleQuant.keyRange, 'warning', 'conflict', 'model.double_quant has no effect with quantization: none (no absmax scales to quantize)', {
      key: 'model.double_quant',
      fixes: [removal('model.double_quant')],
    });
  }
  const blockSize = set('model.block_size');
  if (quantizationOff && blockSize) {
    report(blockSize.keyRange, 'warning', 'conflict', 'model.block_size has no effect with quantization: none', {
      key: 'model.block_size',
      fixes: [removal('model.block_size')],
    });
  }

  const split = set('data.validation_split');
  if (split && set('data.validation')) {
    report(split.keyRange, 'warning', 'conflict', 'data.validation_split is ignored: data.validation names the held-out file', {
      key: 'data.validation_split',
      fixes: [removal('data.validation_split')],
    });
  }

  const evalEvery = set('training.eval_every');
  const noHeldOut = config.data.validation === undefined && config.data.validation_split === 0;
  if (evalEvery && config.training.eval_every > 0 && noHeldOut) {
    report(evalEvery.keyRange, 'warning', 'conflict', 'training.eval_every has nothing to evaluate: set data.validation or a data.validation_split above 0', {
      key: 'training.eval_every',
    });
  }

  const warmup = set('training.warmup_steps');
  const steps = config.training.max_steps;
  if (warmup && maxSteps && steps !== undefined && config.training.warmup_steps >= steps) {
    report(warmup.keyRange, 'warning', 'conflict', `training.warmup_steps (${config.training.warmup_steps}) reaches max_steps (${steps}): the learning rate never gets to its peak`, {
      key: 'training.warmup_steps',
    });
  }
}

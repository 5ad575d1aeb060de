import { parse, quantFrom, UsageError } from './common';
import { mergeAdapter } from '../engine/merge';
import { MERGE_DTYPES, MERGE_TARGETS, MergeRefusedError, type MergeDtype, type MergeEvent, type MergeInto } from '../engine/merge/types';
import { readAdapter } from '../engine/lora/peft';

export const mergeUsage = 'qlora merge --adapter DIR --out DIR [--base MODEL] [--dtype float16|bfloat16|float32] ' +
  '[--into dequantized|original] [--quantization nf4|fp4] [--block-size N] [--no-double-quant] [--force] [--json]';

export async function mergeCommand(args: string[]): Promise<void> {
  const { values: v } = parse(args, {
    adapter: { type: 'string' }, out: { type: 'string' }, base: { type: 'string' }, dtype: { type: 'string' }, into: { type: 'string' },
    quantization: { type: 'string' }, 'block-size': { type: 'string' }, 'no-double-quant': { type: 'boolean' },
    force: { type: 'boolean' }, json: { type: 'boolean' },
  });
  if (!v.adapter) throw new UsageError('--adapter DIR is required');
  if (!v.out) throw new UsageError('--out DIR is required');
  if (v.dtype !== undefined && !(MERGE_DTYPES as readonly string[]).includes(v.dtype)) {
    throw new UsageError(`--dtype must be ${MERGE_DTYPES.join(', ')} (got '${v.dtype}')`);
  }
  if (v.into !== undefined && !(MERGE_TARGETS as readonly string[]).includes(v.into)) {
    throw new UsageError(`--into must be ${MERGE_TARGETS.join(' or ')} (got '${v.into}')`);
  }
  // Flags that describe the 4-bit base override what the trainer recorded beside the adapter.
  const overridesQuant = v.quantization !== undefined || v['block-size'] !== undefined || v['no-double-quant'];
  let quantization;
  if (overridesQuant) {
    let recorded;
    try {
      recorded = readAdapter(v.adapter).baseQuantization;
    } catch {
      recorded = undefined; // the merge itself reports an unreadable adapter
    }
    quantization = quantFrom(v, recorded);
  }
  const json = !!v.json;
  try {
    await mergeAdapter({
      adapter: v.adapter, out: v.out, base: v.base, dtype: v.dtype as MergeDtype | undefined, into: v.into as MergeInto | undefined,
      quantization, force: !!v.force,
    }, json ? (e) => process.stdout.write(JSON.stringify(e) + '\n') : humanPrinter());
  } catch (e) {
    // The stream ends with the failure too, so that a reader of --json needs no stderr.
    if (json) process.stdout.write(JSON.stringify({ type: 'error', refused: e instanceof MergeRefusedError, message: (e as Error).message }) + '\n');
    throw e;
  }
}

function humanPrinter(): (e: MergeEvent) => void {
  const tty = process.stdout.isTTY;
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  let lastLayer: number | null | undefined;
  return (e) => {
    switch (e.type) {
      case 'start': {
        const q = e.quantization;
        const target = q ? `the ${q.quantization.toUpperCase()}-dequantized base (block ${q.blockSize}${q.doubleQuant ? ', double quant' : ''})` : 'the full-precision base';
        process.stdout.write(`merging ${e.adapter} (r ${e.r}, alpha ${e.alpha}${e.rslora ? ', rsLoRA' : ''}, scaling ${e.scaling}) into ${target} ` +
          `${e.base}: ${e.mergedModules} projections, ${e.tensors} tensors, ${mib(e.totalBytes)} of ${e.dtype}\n`);
        break;
      }
      case 'log':
        process.stdout.write(`${e.level === 'warning' ? 'warning: ' : ''}${e.message}\n`);
        break;
      case 'progress': {
        const pct = Math.round((100 * e.bytesWritten) / Math.max(1, e.totalBytes));
        if (tty) {
          process.stdout.write(`\r${String(pct).padStart(3)}%  ${e.tensor.padEnd(48)}`);
        } else if (e.layer !== lastLayer && e.layer !== null) {
          process.stdout.write(`layer ${e.layer + 1}/${e.layers}\n`);
        }
        lastLayer = e.layer;
        break;
      }
      case 'done':
        process.stdout.write(`${tty ? '\n' : ''}wrote ${e.out} (${mib(e.bytes)} in ${(e.elapsedMs / 1000).toFixed(1)} s)\n`);
        break;
    }
  };
}

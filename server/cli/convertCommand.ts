import { resolve } from 'node:path';
import { parse, UsageError } from './common';
import { loadModel } from '../engine/formats/modelFolder';
import { writeHuggingFaceFolder } from '../engine/formats/hfWriter';

export const convertUsage = 'qlora convert MODEL --out DIR [--dtype float32|float16|bfloat16] [--force]';

export async function convertCommand(args: string[]): Promise<void> {
  const { values: v, positionals } = parse(args, { out: { type: 'string' }, dtype: { type: 'string' }, force: { type: 'boolean' } }, true);
  if (positionals.length !== 1) throw new UsageError('expected one MODEL folder');
  if (!v.out) throw new UsageError('--out DIR is required');
  const dtypes = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' } as const;
  const dtype = dtypes[(v.dtype ?? 'float32') as keyof typeof dtypes];
  if (!dtype) throw new UsageError(`--dtype must be float32, float16 or bfloat16 (got '${v.dtype}')`);
  const model = await loadModel(resolve(positionals[0]));
  const out = resolve(v.out);
  writeHuggingFaceFolder(out, model, { dtype, force: !!v.force });
  process.stdout.write(`wrote ${out} (Hugging Face layout, ${v.dtype ?? 'float32'})\n`);
}

import { readFileSync } from 'node:fs';
import { backendFrom, loadForInference, parse, print, quantOptions, UsageError } from './common';
import { evaluateIds } from '../engine/evaluate';

export const evalUsage = 'qlora eval --model MODEL [--adapter DIR] [--quantization nf4|fp4|none] [--no-double-quant] [--block-size N] --text FILE [--json]';

export async function evalCommand(args: string[]): Promise<void> {
  const { values: v } = parse(args, {
    model: { type: 'string' }, adapter: { type: 'string' }, text: { type: 'string' }, json: { type: 'boolean' }, ...quantOptions,
  });
  if (!v.text) throw new UsageError('--text FILE is required');
  let text: string;
  try {
    text = readFileSync(v.text, 'utf8');
  } catch (e) {
    throw new Error(`${v.text}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const backend = await backendFrom(v);
  const { model, tokenizer } = await loadForInference(v.model, v.adapter, v, backend);
  const r = await evaluateIds(model, tokenizer.encode(text, { bos: true }));
  // On stderr, so --json output stays one JSON document.
  if (r.windowShortened) console.error(`qlora eval: ${r.windowShortened}`);
  print(!!v.json, r, `tokens ${r.tokens}  loss ${r.loss.toFixed(6)}  perplexity ${r.perplexity.toFixed(4)}  (${backend.backend})`);
  model.dispose();
}

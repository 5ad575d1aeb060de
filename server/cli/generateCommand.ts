import { backendFrom, loadForInference, parse, quantOptions, UsageError } from './common';
import { generateIds } from '../engine/generate';

export const generateUsage = 'qlora generate --model MODEL [--adapter DIR] [--quantization nf4|fp4|none] [--prompt TEXT] [--max-tokens N] [--temperature T] [--top-p P] [--seed S] [--stream]';

export async function generateCommand(args: string[]): Promise<void> {
  const { values: v } = parse(args, {
    model: { type: 'string' }, adapter: { type: 'string' }, prompt: { type: 'string' },
    'max-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' },
    stream: { type: 'boolean' },
    ...quantOptions,
  });
  const num = (name: string, s: string | undefined, dflt: number, ok: (x: number) => boolean) => {
    const x = s === undefined ? dflt : Number(s);
    if (!Number.isFinite(x) || !ok(x)) throw new UsageError(`--${name}: invalid value '${s}'`);
    return x;
  };
  const maxTokens = num('max-tokens', v['max-tokens'], 128, (x) => Number.isInteger(x) && x > 0);
  const temperature = num('temperature', v.temperature, 0, (x) => x >= 0);
  const topP = num('top-p', v['top-p'], 0.9, (x) => x > 0 && x <= 1);
  const seed = num('seed', v.seed, 42, Number.isInteger);
  const backend = await backendFrom(v);
  const { model, tokenizer } = await loadForInference(v.model, v.adapter, v, backend);
  const prompt = tokenizer.encode(v.prompt ?? '', { bos: true });
  // --stream: one JSON line per token with the text generated so far (decoded whole, so
  // pieces of one character never show half), then {"type":"done"} with prompt + text.
  const onToken = v.stream ? (_: number, so: readonly number[]) => process.stdout.write(JSON.stringify({ type: 'token', text: tokenizer.decode([...so]) }) + '\n') : undefined;
  const ids = await generateIds(model, prompt, { maxTokens, temperature, topP, seed, stopIds: [tokenizer.eosId, tokenizer.bosId], onToken });
  const text = tokenizer.decode([...prompt, ...ids]);
  process.stdout.write(v.stream ? JSON.stringify({ type: 'done', text, generated: tokenizer.decode(ids) }) + '\n' : text + '\n');
  model.dispose();
}

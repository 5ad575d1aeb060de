import { backendFrom, loadForInference, parse, print, quantOptions, UsageError } from './common';
import { generateIds } from '../engine/generate';
import { ChatRenderer } from '../engine/train/chatTemplate';

export const generateUsage = 'qlora generate --model MODEL [--adapter DIR] [--quantization nf4|fp4|none] [--prompt TEXT] [--raw] [--max-tokens N] [--temperature T] [--top-p P] [--seed S] [--no-kv-cache] [--json] [--stream]';

/**
 * A model with a chat template gets `--prompt` as one user turn rendered with it (and a
 * generation prompt), and prints only the reply; `--raw`, no prompt, or a model without a
 * template continue the text as given and print it with its continuation. With --json:
 * {"text", "tokens", "promptTokens", "chatTemplate", "kvCache", "seconds", "tokensPerSec"}.
 * `signal` (from an embedding caller) is checked after loading and before each token.
 */
export async function generateCommand(args: string[], signal?: AbortSignal): Promise<void> {
  const { values: v } = parse(args, {
    model: { type: 'string' }, adapter: { type: 'string' }, prompt: { type: 'string' }, raw: { type: 'boolean' },
    'max-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' },
    'no-kv-cache': { type: 'boolean' }, json: { type: 'boolean' }, stream: { type: 'boolean' },
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
  try {
    signal?.throwIfAborted();
    // Every EOS id (Llama 3.x stops on <|eot_id|> and <|end_of_text|>), and BOS as llama2.c does.
    const stopIds = new Set([...tokenizer.eosIds, tokenizer.bosId]);
    const chat = tokenizer.chatTemplate && v.prompt !== undefined && !v.raw ? new ChatRenderer(tokenizer) : undefined;
    let prompt: number[];
    if (chat) {
      prompt = chat.encode(chat.render([{ role: 'user', content: v.prompt! }], true));
      const turnEnd = chat.endOfTurnIds();
      if (turnEnd.length === 1) stopIds.add(turnEnd[0]);
    } else {
      prompt = tokenizer.encode(v.prompt ?? '', { bos: true });
      // A model without BOS (Qwen) starts an empty prompt from its bos_token_id (<|endoftext|>).
      if (prompt.length === 0) prompt = [tokenizer.bosId];
    }
    const kvCache = !v['no-kv-cache'];
    const started = performance.now();
    // --stream: one JSON line per token with the text generated so far (decoded whole, so
    // pieces of one character never show half), then {"type":"done"} with the text.
    const onToken = v.stream ? (_: number, so: readonly number[]) => process.stdout.write(JSON.stringify({ type: 'token', text: tokenizer.decode([...so]) }) + '\n') : undefined;
    const ids = await generateIds(model, prompt, { maxTokens, temperature, topP, seed, stopIds: [...stopIds], kvCache, signal, onToken });
    const seconds = (performance.now() - started) / 1000;
    const text = tokenizer.decode(chat ? ids : [...prompt, ...ids]);
    if (v.stream) {
      process.stdout.write(JSON.stringify({ type: 'done', text: tokenizer.decode([...prompt, ...ids]), generated: tokenizer.decode(ids) }) + '\n');
      return;
    }
    print(!!v.json, {
      text, tokens: ids.length, promptTokens: prompt.length, chatTemplate: !!chat, kvCache, seconds, tokensPerSec: ids.length / seconds,
    }, text);
  } finally {
    model.dispose();
  }
}

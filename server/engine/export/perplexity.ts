// Perplexity of an exported GGUF as llama.cpp computes it, for the post-training
// quantization report: the text is encoded by the project's tokenizer (BOS first, as
// `qlora eval` does) and cut into the same consecutive windows of the model's context, so the
// figure compares with `qlora eval` on the source model.
import { runLlamaCpp } from './llamaCpp';

export interface GgufPerplexity {
  tokens: number;
  /** Mean negative log-likelihood in nats per predicted token. */
  loss: number;
  perplexity: number;
}

export async function perplexityOf(gguf: string, ids: number[], window: number, opts: { lora?: string } = {}): Promise<GgufPerplexity> {
  if (ids.length < 2) throw new Error('the text encodes to fewer than two tokens: nothing to predict');
  const ops = [];
  for (let start = 0; start + 1 < ids.length; start += window) ops.push({ op: 'logprobs' as const, ids: ids.slice(start, Math.min(start + window + 1, ids.length)) });
  const results = await runLlamaCpp({ model: gguf, lora: opts.lora, contextSize: Math.min(window, ids.length), ops });
  let nll = 0, tokens = 0;
  for (const lp of results) for (const x of lp) { nll -= x; tokens++; }
  const loss = nll / tokens;
  return { tokens, loss, perplexity: Math.exp(loss) };
}

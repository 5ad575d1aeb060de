// Held-out loss of a model on a text: the text is encoded as one sequence (BOS first)
// and cut into consecutive windows of the model's context; every token after the first
// is predicted exactly once, from at most one context of preceding tokens. Reads are
// asynchronous: the webgpu backend cannot read synchronously in Node.
import { tf } from './tf';
import type { LlamaModel } from './model/llama';

export interface EvalResult {
  tokens: number;
  /** Mean negative log-likelihood in nats per predicted token. */
  loss: number;
  perplexity: number;
}

export async function evaluateIds(model: LlamaModel, ids: number[], window = model.config.maxPositionEmbeddings): Promise<EvalResult> {
  if (ids.length < 2) throw new Error('the text encodes to fewer than two tokens: nothing to predict');
  let totalNll = 0, tokens = 0;
  for (let start = 0; start + 1 < ids.length; start += window) {
    const chunk = ids.slice(start, Math.min(start + window + 1, ids.length));
    const T = chunk.length - 1;
    const nll = tf.tidy(() => {
      const inp = tf.tensor2d(chunk.slice(0, T), [1, T], 'int32');
      const tgt = tf.tensor2d(chunk.slice(1), [1, T], 'int32');
      return model.loss(inp, tgt, tf.ones([1, T]) as tf.Tensor2D);
    });
    totalNll += (await nll.data())[0] * T;
    nll.dispose();
    tokens += T;
  }
  const loss = totalNll / tokens;
  return { tokens, loss, perplexity: Math.exp(loss) };
}

// Held-out loss of a model on a text: the text is encoded as one sequence (BOS first)
// and cut into consecutive windows; every token after the first is predicted exactly
// once, from at most one window of preceding tokens. The window is the model's context,
// shortened to what the memory plan says fits (memory/plan.ts): a config.json claiming a
// 65536-token context must not make one forward pass of 65536 tokens. Reads are
// asynchronous: the webgpu backend cannot read synchronously in Node.
import { tf } from './tf';
import type { LlamaModel } from './model/llama';
import type { LlamaConfig } from './model/config';
import { planMemory, type PlanBackend, type PlanQuantization } from './memory/plan';
import { memoryBudget, overBudget } from './memory/preflight';

export interface EvalResult {
  tokens: number;
  /** Mean negative log-likelihood in nats per predicted token. */
  loss: number;
  perplexity: number;
  /** Tokens per window. */
  window: number;
  /** Set when the window is shorter than the model's context, and why. */
  windowShortened?: string;
}

/** Eval windows are never longer than this, whatever the memory allows: longer costs time, not accuracy. */
export const MAX_EVAL_WINDOW = 4096;

/**
 * The eval window for a model: min(context, MAX_EVAL_WINDOW, the longest window whose
 * forward pass the memory plan fits in the backend's budget), and a note when shortened.
 */
export function evalWindow(config: LlamaConfig, quant: PlanQuantization, backend: PlanBackend): { window: number; shortened?: string } {
  const context = config.maxPositionEmbeddings;
  const input = { model: config, quant, lora: { r: 0, targetModules: [] }, microBatch: 1, gradientCheckpointing: false, backend, mode: 'eval' as const };
  const budget = memoryBudget(planMemory({ ...input, seqLen: 1 }).backend);
  // Evaluation shares the machine with the editor and other runs: plan for half of the host.
  budget.hostTotal /= 2;
  const fits = (T: number) => overBudget(planMemory({ ...input, seqLen: T }), budget) === undefined;
  let hi = Math.min(context, MAX_EVAL_WINDOW);
  if (fits(hi)) {
    return hi < context ? { window: hi, shortened: `window of ${hi} tokens instead of the model's context of ${context} (the eval window limit)` } : { window: hi };
  }
  let lo = 1;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return { window: lo, shortened: `window of ${lo} tokens instead of the model's context of ${context}: a longer one does not fit the memory plan` };
}

export async function evaluateIds(model: LlamaModel, ids: number[], window?: number): Promise<EvalResult> {
  if (ids.length < 2) throw new Error('the text encodes to fewer than two tokens: nothing to predict');
  let shortened: string | undefined;
  if (window === undefined) {
    const q = model.quant;
    const w = evalWindow(model.config, { quantization: q.quantization, blockSize: q.blockSize, doubleQuant: q.doubleQuant }, tf.getBackend() as PlanBackend);
    window = w.window;
    // Only worth saying when the text is longer than the window it got.
    if (w.shortened && ids.length - 1 > window) shortened = w.shortened;
  }
  let totalNll = 0, tokens = 0;
  for (let start = 0; start + 1 < ids.length; start += window) {
    const chunk = ids.slice(start, Math.min(start + window + 1, ids.length));
    const T = chunk.length - 1;
    const nll = tf.tidy(() => {
      const inp = tf.tensor2d(chunk.slice(0, T), [1, T], 'int32');
      const tgt = tf.tensor2d(chunk.slice(1), [1, T], 'int32');
      return model.loss(inp, tgt, tf.ones([1, T]) as tf.Tensor2D);
    });
    const value = (await nll.data())[0];
    nll.dispose();
    // A NaN or infinite loss is corrupted weights (or an adapter gone wrong), never a result.
    if (!Number.isFinite(value)) {
      throw new Error(`the loss is ${value} on tokens ${start}..${start + T}: the model's weights produce non-finite logits (corrupted weights or adapter?)`);
    }
    totalNll += value * T;
    tokens += T;
  }
  const loss = totalNll / tokens;
  return { tokens, loss, perplexity: Math.exp(loss), window, ...(shortened ? { windowShortened: shortened } : {}) };
}

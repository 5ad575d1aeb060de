// Checks that what a run is about to save is worth saving. The loss of step k is computed
// with the weights before step k's update, so a finite loss says nothing of the weights a
// checkpoint at step k holds: an update at a learning rate of 1e30 turns them to NaN, or so
// large that the next forward pass overflows. Before every save the weights are checked
// themselves: finite, and giving a finite loss on the last batch.
import { tf } from '../tf';
import type { LlamaModel } from '../model/llama';

/** Why the weights are unfit to save, or undefined when they are fine. */
export async function unfitWeights(
  params: tf.Variable[], model: LlamaModel, probe: { ids: tf.Tensor2D; targets: tf.Tensor2D; weights: tf.Tensor2D } | undefined,
  vocabSize: number,
): Promise<string | undefined> {
  // A sum of squares overflows to Infinity when any weight is NaN, infinite, or beyond ~1e19.
  const norm = tf.tidy(() => tf.addN(params.map((p) => tf.sum(tf.square(p)))));
  const squares = (await norm.data())[0];
  norm.dispose();
  if (!Number.isFinite(squares)) return `the LoRA weights are not finite (sum of squares ${squares})`;
  if (!probe) return undefined;
  const l = tf.tidy(() => model.loss(probe.ids, probe.targets, probe.weights));
  const loss = (await l.data())[0];
  l.dispose();
  if (!Number.isFinite(loss)) return `the weights give a loss of ${loss} on the last batch`;
  if (Math.abs(loss - Math.log(vocabSize)) < 1e-4 * Math.log(vocabSize)) {
    return `the model collapsed: it gives every token the same probability (loss ${loss.toFixed(4)} = ln ${vocabSize} on the last batch)`;
  }
  return undefined;
}

/**
 * A model that predicts the uniform distribution whatever the input: the loss is exactly
 * ln(vocab) and no gradient flows (every LoRA output saturated). What a very high learning
 * rate ends in without any NaN; training on cannot leave it.
 */
export function collapsed(loss: number, gradNorm: number, vocabSize: number): boolean {
  const uniform = Math.log(vocabSize);
  return gradNorm < 1e-12 && Math.abs(loss - uniform) < 1e-3 * uniform;
}

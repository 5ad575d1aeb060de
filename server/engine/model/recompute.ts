// The backward pass of a recomputed (checkpointed) piece of the model: run it again under
// a tape of its own and take the gradients of its inputs for the incoming dy.
//
// This runs inside the outer backward pass. TensorFlow.js keeps one active tape: a nested
// gradients() call would replace the outer tape and, when done, clear it - the outer pass
// would then neither free its saved tensors nor finish. So the outer tape is put back
// afterwards, and the inner one (this piece's intermediates) is freed before we return.
import { tf } from '../tf';

interface EngineTapeState {
  state: { activeTape: unknown };
}

/** Gradients of f() with respect to xs, for dy; f's intermediates are freed before returning. */
export function recomputeGradients(f: () => tf.Tensor, xs: tf.Tensor[], dy: tf.Tensor): tf.Tensor[] {
  const engine = tf.engine() as unknown as EngineTapeState;
  const outer = engine.state.activeTape;
  try {
    return tf.tidy(() => {
      const { value, grads } = tf.engine().gradients(f, xs, dy);
      value.dispose();
      return grads;
    });
  } finally {
    engine.state.activeTape = outer;
  }
}

// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"), step for step
// as PyTorch's torch.optim.AdamW (single-tensor path):
//   p <- p * (1 - lr * wd)                       decay applied to the weight, not the gradient
//   m <- b1 * m + (1 - b1) * g
//   v <- b2 * v + (1 - b2) * g^2
//   p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// Only the LoRA A and B matrices are ever handed to it. The moments live in
// non-trainable variables updated in place, so memory stays flat from step to step.
import { tf } from '../tf';

export interface AdamWOptions {
  beta1?: number;       // default 0.9
  beta2?: number;       // default 0.999
  epsilon?: number;     // default 1e-8
  /** Decoupled weight decay; default 0, the transformers Trainer default. */
  weightDecay?: number;
}

/** Everything a checkpoint needs to continue bit for bit: moments per parameter and the step. */
export interface AdamWState {
  step: number;
  m: Float32Array[];
  v: Float32Array[];
}

/** Gradients either aligned with the parameters or keyed by variable name (tf.variableGrads). */
export type Gradients = tf.Tensor[] | tf.NamedTensorMap;

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];
  private step_ = 0;

  constructor(readonly params: tf.Variable[], opts: AdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.epsilon = opts.epsilon ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    const zeros = () => params.map((p) => tf.tidy(() => tf.variable(tf.zerosLike(p), false)));
    this.m = zeros();
    this.v = zeros();
  }

  /** Optimizer steps taken so far (PyTorch's state['step']). */
  get stepCount(): number {
    return this.step_;
  }

  /** One update with learning rate `lr`. The gradients stay the caller's to dispose. */
  step(grads: Gradients, lr: number): void {
    const g = alignGradients(this.params, grads);
    const t = this.step_ + 1;
    const { beta1: b1, beta2: b2, epsilon: eps, weightDecay: wd } = this;
    const stepSize = lr / (1 - b1 ** t);
    const sqrtBias2 = Math.sqrt(1 - b2 ** t);
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        const m = tf.add(tf.mul(this.m[i], b1), tf.mul(g[i], 1 - b1));
        const v = tf.add(tf.mul(this.v[i], b2), tf.mul(tf.square(g[i]), 1 - b2));
        const decayed = wd === 0 ? p : tf.mul(p, 1 - lr * wd);
        const denom = tf.add(tf.div(tf.sqrt(v), sqrtBias2), eps);
        this.m[i].assign(m);
        this.v[i].assign(v);
        p.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), stepSize)));
      });
    });
    this.step_ = t;
  }

  async getState(): Promise<AdamWState> {
    const read = (list: tf.Variable[]) => Promise.all(list.map(async (x) => Float32Array.from((await x.data()) as Float32Array)));
    return { step: this.step_, m: await read(this.m), v: await read(this.v) };
  }

  setState(state: AdamWState): void {
    if (!(Number.isInteger(state.step) && state.step >= 0)) throw new Error(`AdamW state: bad step ${state.step}`);
    const check = (list: Float32Array[], name: string) => {
      if (list.length !== this.params.length) {
        throw new Error(`AdamW state: ${list.length} ${name} tensors for ${this.params.length} parameters`);
      }
      list.forEach((a, i) => {
        if (a.length !== this.params[i].size) {
          throw new Error(`AdamW state: ${name}[${i}] has ${a.length} values, parameter ${this.params[i].name} has ${this.params[i].size}`);
        }
      });
    };
    check(state.m, 'm');
    check(state.v, 'v');
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        // Copies: the cpu backend would otherwise keep the caller's array as its storage.
        this.m[i].assign(tf.tensor(state.m[i].slice(), p.shape, 'float32'));
        this.v[i].assign(tf.tensor(state.v[i].slice(), p.shape, 'float32'));
      });
    });
    this.step_ = state.step;
  }

  /** Frees the moments (the parameters belong to the model). */
  dispose(): void {
    tf.dispose([...this.m, ...this.v]);
  }
}

/** Gradients as a list aligned with `params`. */
export function alignGradients(params: tf.Variable[], grads: Gradients): tf.Tensor[] {
  const list = Array.isArray(grads) ? grads : params.map((p) => (grads as tf.NamedTensorMap)[p.name]);
  if (list.length !== params.length) throw new Error(`${list.length} gradients for ${params.length} parameters`);
  list.forEach((g, i) => {
    if (!g) throw new Error(`no gradient for parameter ${params[i].name}`);
    if (!tf.util.arraysEqual(g.shape, params[i].shape)) {
      throw new Error(`gradient of ${params[i].name} has shape [${g.shape}], expected [${params[i].shape}]`);
    }
  });
  return list;
}

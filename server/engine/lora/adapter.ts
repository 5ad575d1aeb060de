// A set of LoRA layers over a model's projections, keyed by Hugging Face module name,
// and its conversion to and from PEFT's tensor names.
import { LINEAR_MODULES, linearName, linearShape, type LinearModule, type LlamaConfig } from '../model/config';
import type { WeightMap } from '../formats/types';
import type { Rng } from '../rng';
import type { tf } from '../tf';
import { LoraLayer } from './loraLayer';
import { loraScaling, PEFT_PREFIX, resolveTargets } from './names';

export { PEFT_PREFIX, resolveTargets };

export interface LoraConfig {
  r: number;
  alpha: number;
  dropout: number;
  targetModules: readonly LinearModule[] | 'all-linear';
  rslora: boolean;
}


export class LoraAdapter {
  private constructor(readonly config: LoraConfig, readonly layers: Map<string, LoraLayer>) {}

  /** A fresh adapter: A Kaiming-uniform from `rng`, B zero. Layers in model order. */
  static create(model: LlamaConfig, config: LoraConfig, rng: Rng): LoraAdapter {
    return LoraAdapter.build(model, config, (name, o, i, scaling) =>
      new LoraLayer(name, i, o, config.r, scaling, config.dropout, { rng }));
  }

  /** An adapter from PEFT-named tensors; every expected tensor must be present and shaped right. */
  static fromPeftTensors(model: LlamaConfig, config: LoraConfig, tensors: WeightMap, file: string): LoraAdapter {
    return LoraAdapter.build(model, config, (name, o, i, scaling) => {
      const a = tensors.get(`${PEFT_PREFIX}${name}.lora_A.weight`);
      const b = tensors.get(`${PEFT_PREFIX}${name}.lora_B.weight`);
      if (!a || !b) throw new Error(`${file}: missing ${PEFT_PREFIX}${name}.lora_${a ? 'B' : 'A'}.weight`);
      const want = (t: { shape: number[] }, s: number[], which: string) => {
        if (t.shape.length !== 2 || t.shape[0] !== s[0] || t.shape[1] !== s[1]) {
          throw new Error(`${file}: ${name}.lora_${which} has shape [${t.shape}] but the base model needs [${s}]`);
        }
      };
      want(a, [config.r, i], 'A');
      want(b, [o, config.r], 'B');
      return new LoraLayer(name, i, o, config.r, scaling, config.dropout, { A: a.data, B: b.data });
    });
  }

  private static build(model: LlamaConfig, config: LoraConfig,
    make: (name: string, out: number, inp: number, scaling: number) => LoraLayer): LoraAdapter {
    const targets = resolveTargets(config.targetModules);
    const scaling = loraScaling(config.alpha, config.r, config.rslora);
    const layers = new Map<string, LoraLayer>();
    for (let l = 0; l < model.numLayers; l++) {
      for (const m of LINEAR_MODULES) {
        if (!targets.includes(m)) continue;
        const [o, i] = linearShape(model, m);
        const name = linearName(l, m);
        layers.set(name, make(name, o, i, scaling));
      }
    }
    return new LoraAdapter(config, layers);
  }

  get(name: string): LoraLayer | undefined {
    return this.layers.get(name);
  }

  variables(): tf.Variable[] {
    return [...this.layers.values()].flatMap((l) => [l.A, l.B]);
  }

  parameterCount(): number {
    return this.variables().reduce((n, v) => n + v.size, 0);
  }

  /** Host copies under PEFT names. */
  async toPeftTensors(): Promise<WeightMap> {
    const out: WeightMap = new Map();
    for (const [name, l] of this.layers) {
      out.set(`${PEFT_PREFIX}${name}.lora_A.weight`, { shape: [...l.A.shape], data: (await l.A.data()) as Float32Array });
      out.set(`${PEFT_PREFIX}${name}.lora_B.weight`, { shape: [...l.B.shape], data: (await l.B.data()) as Float32Array });
    }
    return out;
  }

  dispose(): void {
    for (const l of this.layers.values()) l.dispose();
  }
}

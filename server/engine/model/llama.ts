// A Llama-family causal language model (Touvron et al. 2023; Hugging Face's
// LlamaForCausalLM) on TensorFlow.js: token embedding, N blocks of
// [RMSNorm -> grouped-query attention with rotary positions -> residual,
//  RMSNorm -> SwiGLU MLP -> residual], final RMSNorm, output head.
// The seven projections of every block are frozen weight stores (4-bit NF4/FP4 or fp32)
// with optional LoRA adapters beside them. Shape legend as in layers.ts.
import { tf } from '../tf';
import { LINEAR_MODULES, linearName, linearShape, type LinearModule, type LlamaConfig } from './config';
import { DenseWeight, frozenLinear, type FrozenWeight } from './frozenLinear';
import { applyRope, attention, attentionMask, crossEntropy, mergeHeads, repeatKv, rmsNorm, ropeTables, splitHeads } from './layers';
import { swiglu } from '../ops/swiglu';
import type { LoadedModel, WeightMap } from '../formats/types';
import type { LoraAdapter } from '../lora/adapter';
import { QuantizedWeight, type QuantType } from '../quant/quantizedWeight';

export type Quantization = QuantType | 'none';

export interface QuantizationOptions {
  quantization: Quantization;
  blockSize: number;
  doubleQuant: boolean;
}

export const DEFAULT_QUANTIZATION: QuantizationOptions = { quantization: 'nf4', blockSize: 64, doubleQuant: true };

interface Block {
  inputNorm: tf.Tensor1D;
  postNorm: tf.Tensor1D;
  proj: Record<LinearModule, FrozenWeight>;
  bias?: { q_proj: tf.Tensor1D; k_proj: tf.Tensor1D; v_proj: tf.Tensor1D };
}

export interface ForwardOptions {
  /** When set, LoRA dropout is active and each adapter draws its mask from the next seed. */
  dropoutSeed?: () => number;
  /** (B, T) of 1 for real tokens, 0 for padding; keys at 0 are not attended to. */
  attentionMask?: tf.Tensor2D;
}

export class LlamaModel {
  private readonly embed: tf.Tensor2D; // (V, C)
  private readonly headT: tf.Tensor2D; // (C, V): the output head, pre-transposed for a plain product
  private readonly finalNorm: tf.Tensor1D;
  private readonly blocks: Block[];
  private readonly cosTable: tf.Tensor2D; // (maxT, hs)
  private readonly sinTable: tf.Tensor2D;
  lora?: LoraAdapter;

  private constructor(readonly config: LlamaConfig, readonly quant: QuantizationOptions, weights: WeightMap, file: string) {
    const c = config;
    const get = (name: string, shape: number[]): Float32Array => {
      const t = weights.get(name);
      if (!t) throw new Error(`${file}: missing tensor ${name}`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new Error(`${file}: ${name} has shape [${t.shape}], expected [${shape}]`);
      }
      return t.data;
    };
    const embedData = get('model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]);
    this.embed = tf.tensor2d(embedData, [c.vocabSize, c.hiddenSize]);
    const headData = c.tieWordEmbeddings ? embedData : get('lm_head.weight', [c.vocabSize, c.hiddenSize]);
    this.headT = tf.tidy(() => tf.transpose(tf.tensor2d(headData, [c.vocabSize, c.hiddenSize])));
    this.finalNorm = tf.tensor1d(get('model.norm.weight', [c.hiddenSize]));
    this.blocks = [];
    for (let l = 0; l < c.numLayers; l++) {
      const proj = {} as Record<LinearModule, FrozenWeight>;
      for (const m of LINEAR_MODULES) {
        const shape = linearShape(c, m);
        const data = get(`${linearName(l, m)}.weight`, shape);
        proj[m] = quant.quantization === 'none'
          ? new DenseWeight(shape, data)
          : QuantizedWeight.fromHost({ shape, data }, { quantType: quant.quantization, blockSize: quant.blockSize, doubleQuant: quant.doubleQuant });
      }
      const block: Block = {
        inputNorm: tf.tensor1d(get(`model.layers.${l}.input_layernorm.weight`, [c.hiddenSize])),
        postNorm: tf.tensor1d(get(`model.layers.${l}.post_attention_layernorm.weight`, [c.hiddenSize])),
        proj,
      };
      if (c.attentionBias) {
        const b = (m: 'q_proj' | 'k_proj' | 'v_proj') => tf.tensor1d(get(`${linearName(l, m)}.bias`, [linearShape(c, m)[0]]));
        block.bias = { q_proj: b('q_proj'), k_proj: b('k_proj'), v_proj: b('v_proj') };
      }
      this.blocks.push(block);
    }
    const { cos, sin } = ropeTables(c.maxPositionEmbeddings, c.headDim, c.ropeTheta);
    this.cosTable = tf.tensor2d(cos, [c.maxPositionEmbeddings, c.headDim]);
    this.sinTable = tf.tensor2d(sin, [c.maxPositionEmbeddings, c.headDim]);
  }

  /** Uploads a loaded model to the current backend, quantizing the block projections. */
  static fromLoaded(m: LoadedModel, quant: QuantizationOptions = DEFAULT_QUANTIZATION): LlamaModel {
    return new LlamaModel(m.config, quant, m.weights, m.dir);
  }

  /** Logits (B*T, V) for token ids (B, T). */
  forward(ids: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor2D {
    const c = this.config;
    const [B, T] = ids.shape;
    if (T > c.maxPositionEmbeddings) {
      throw new Error(`sequence of ${T} tokens is longer than the model's context of ${c.maxPositionEmbeddings}`);
    }
    const cos = tf.slice(this.cosTable, [0, 0], [T, c.headDim]);
    const sin = tf.slice(this.sinTable, [0, 0], [T, c.headDim]);
    const mask = attentionMask(T, opts.attentionMask);
    let x = tf.gather(this.embed, tf.reshape(ids, [B * T])) as tf.Tensor2D; // (N, C)
    for (let l = 0; l < this.blocks.length; l++) {
      x = tf.add(x, this.attentionBlock(l, rmsNorm(x, this.blocks[l].inputNorm, c.rmsNormEps), B, T, cos, sin, mask, opts));
      x = tf.add(x, this.mlpBlock(l, rmsNorm(x, this.blocks[l].postNorm, c.rmsNormEps), opts));
    }
    x = rmsNorm(x, this.finalNorm, c.rmsNormEps);
    return tf.matMul(x, this.headT); // (N, V)
  }

  /** Mean NLL over weighted positions: ids, targets and weights are (B, T). */
  loss(ids: tf.Tensor2D, targets: tf.Tensor2D, weights: tf.Tensor2D, opts: ForwardOptions = {}): tf.Scalar {
    const [B, T] = ids.shape;
    const logits = this.forward(ids, opts);
    return crossEntropy(logits, tf.reshape(targets, [B * T]) as tf.Tensor1D, tf.reshape(weights, [B * T]) as tf.Tensor1D);
  }

  private linear(l: number, m: LinearModule, x: tf.Tensor2D, opts: ForwardOptions): tf.Tensor2D {
    const block = this.blocks[l];
    let y = frozenLinear(x, block.proj[m]);
    if (block.bias && (m === 'q_proj' || m === 'k_proj' || m === 'v_proj')) y = tf.add(y, block.bias[m]);
    const adapter = this.lora?.get(linearName(l, m));
    if (adapter) y = tf.add(y, adapter.delta(x, opts.dropoutSeed?.()));
    return y;
  }

  private attentionBlock(l: number, x: tf.Tensor2D, B: number, T: number, cos: tf.Tensor2D, sin: tf.Tensor2D,
    mask: tf.Tensor, opts: ForwardOptions): tf.Tensor2D {
    const c = this.config;
    const q = applyRope(splitHeads(this.linear(l, 'q_proj', x, opts), B, T, c.numHeads, c.headDim), cos, sin);
    const k = applyRope(splitHeads(this.linear(l, 'k_proj', x, opts), B, T, c.numKvHeads, c.headDim), cos, sin);
    const v = splitHeads(this.linear(l, 'v_proj', x, opts), B, T, c.numKvHeads, c.headDim);
    const nRep = c.numHeads / c.numKvHeads;
    const y = attention(q, repeatKv(k, nRep), repeatKv(v, nRep), mask); // (B, nh, T, hs)
    return this.linear(l, 'o_proj', mergeHeads(y), opts);
  }

  private mlpBlock(l: number, x: tf.Tensor2D, opts: ForwardOptions): tf.Tensor2D {
    const gate = this.linear(l, 'gate_proj', x, opts);
    const up = this.linear(l, 'up_proj', x, opts);
    return this.linear(l, 'down_proj', swiglu(gate, up), opts);
  }

  /** Bytes held on the backend: the block projections (quantized) and everything else. */
  residentBytes(): { projections: number; projectionParams: number; other: number } {
    let projections = 0, projectionParams = 0;
    for (const b of this.blocks) {
      for (const m of LINEAR_MODULES) {
        projections += b.proj[m].residentBytes();
        projectionParams += b.proj[m].shape[0] * b.proj[m].shape[1];
      }
    }
    const t = [this.embed, this.headT, this.finalNorm, this.cosTable, this.sinTable,
      ...this.blocks.flatMap((b) => [b.inputNorm, b.postNorm, ...(b.bias ? Object.values(b.bias) : [])])];
    const other = t.reduce((n, x) => n + x.size * 4, 0);
    return { projections, projectionParams, other };
  }

  /** The frozen projection weight of one block as float32 on the host, [out, in]. */
  async projectionWeight(l: number, m: LinearModule): Promise<Float32Array> {
    const w = this.blocks[l].proj[m].dequantize();
    const d = (await w.data()) as Float32Array;
    w.dispose();
    return d;
  }

  dispose(): void {
    this.embed.dispose();
    this.headT.dispose();
    this.finalNorm.dispose();
    this.cosTable.dispose();
    this.sinTable.dispose();
    for (const b of this.blocks) {
      b.inputNorm.dispose();
      b.postNorm.dispose();
      for (const m of LINEAR_MODULES) b.proj[m].dispose();
      if (b.bias) Object.values(b.bias).forEach((t) => t.dispose());
    }
    this.lora?.dispose();
  }
}

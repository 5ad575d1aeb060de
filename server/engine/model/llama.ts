// A Llama-family causal language model (Touvron et al. 2023; Hugging Face's
// LlamaForCausalLM) on TensorFlow.js: token embedding, N blocks of
// [RMSNorm -> grouped-query attention with rotary positions -> residual,
//  RMSNorm -> SwiGLU MLP -> residual], final RMSNorm, output head.
// The seven projections of every block are frozen weight stores (4-bit NF4/FP4 or fp32)
// with optional LoRA adapters beside them. Shape legend as in layers.ts.
import { tf } from '../tf';
import { LINEAR_MODULES, linearName, linearShape, type LinearModule, type LlamaConfig } from './config';
import { DenseWeight, frozenLinear, type FrozenWeight } from './frozenLinear';
import { loraLinear, loraLinearRuns } from './loraLinear';
import { applyRope, attention, attentionMask, causalMask, mergeHeads, repeatKv, rmsNorm, splitHeads } from './layers';
import { chunkedLinearCrossEntropy, chunkedLogits, DEFAULT_VOCAB_CHUNK } from './chunkedLoss';
import { FrozenTable } from './frozenTable';
import { recomputeGradients } from './recompute';
import { ropeInvFreq, ropeTables } from './rope';
import { swiglu } from '../ops/swiglu';
import type { LoadedModel, WeightMap } from '../formats/types';
import type { LoraAdapter } from '../lora/adapter';
import { QuantizedWeight } from '../quant/quantizedWeight';
import { DEFAULT_QUANTIZATION, type QuantizationOptions } from '../quant/spec';

export { DEFAULT_QUANTIZATION, type Quantization, type QuantizationOptions } from '../quant/spec';

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
  /**
   * Gradient checkpointing: each decoder block is one op that keeps only its input for the
   * backward pass and recomputes its own forward there (training.gradient_checkpointing).
   * Only matters under a gradient tape; the result is the same either way.
   */
  gradientCheckpointing?: boolean;
}

/** What one forward pass shares across blocks. */
interface PassContext {
  B: number;
  T: number;
  cos: tf.Tensor2D; // (T, hs)
  sin: tf.Tensor2D;
  mask: tf.Tensor;
}

/** The LoRA dropout seed of each adapted projection of one block, drawn before the block runs. */
type BlockSeeds = Partial<Record<LinearModule, number>>;

/** See LlamaModel.decoderPieces(); x is (N, C) rows, l a block index. */
export interface DecoderPieces {
  embed(ids: tf.Tensor1D): tf.Tensor2D;
  inputNorm(l: number, x: tf.Tensor2D): tf.Tensor2D;
  postNorm(l: number, x: tf.Tensor2D): tf.Tensor2D;
  /** A block's projection with its bias and LoRA adapter, no dropout. */
  linear(l: number, m: LinearModule, x: tf.Tensor2D): tf.Tensor2D;
  mlp(l: number, x: tf.Tensor2D): tf.Tensor2D;
  /** Final norm and output head: (N, V). */
  logits(x: tf.Tensor2D): tf.Tensor2D;
  /** Rotary cos and sin rows for positions start..start+T-1: (T, hs) each. */
  rope(start: number, T: number): [tf.Tensor2D, tf.Tensor2D];
}

/**
 * Whether block l's input depends on no trainable weight: block 0 reads rows of the frozen
 * embedding table, and only LoRA adapters train. Its q/k/v projections then take no input
 * gradient (no dy W product, no dequantize), as PyTorch's autograd skips it too.
 */
function inputIsConstant(l: number): boolean {
  return l === 0;
}

export class LlamaModel {
  /** The token embedding (V, C), compact on the host; a tied head is this same table. */
  private readonly embed: FrozenTable;
  private readonly head: FrozenTable;
  private readonly finalNorm: tf.Tensor1D;
  private readonly blocks: Block[];
  private readonly invFreq: Float64Array;
  private positions?: { T: number; cos: tf.Tensor2D; sin: tf.Tensor2D; causal: tf.Tensor2D };
  /** Vocabulary rows per chunk of the fused head + loss (chunkedLoss.ts). */
  vocabChunk = DEFAULT_VOCAB_CHUNK;
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
    // Kept exactly as the checkpoint holds them (16-bit for bf16/fp16 checkpoints), so
    // training, eval and a merged model all see the same embedding and head.
    this.embed = FrozenTable.fromFloat32(get('model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]), c.vocabSize, c.hiddenSize);
    this.head = c.tieWordEmbeddings
      ? this.embed
      : FrozenTable.fromFloat32(get('lm_head.weight', [c.vocabSize, c.hiddenSize]), c.vocabSize, c.hiddenSize);
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
    this.invFreq = ropeInvFreq(c);
  }

  /** Uploads a loaded model to the current backend, quantizing the block projections. */
  static fromLoaded(m: LoadedModel, quant: QuantizationOptions = DEFAULT_QUANTIZATION): LlamaModel {
    return new LlamaModel(m.config, quant, m.weights, m.dir);
  }

  /** Logits (B*T, V) for token ids (B, T). */
  forward(ids: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor2D {
    return tf.tidy(() => chunkedLogits(this.hidden(ids, opts), this.head, this.vocabChunk));
  }

  /** Mean NLL over weighted positions: ids, targets and weights are (B, T). */
  loss(ids: tf.Tensor2D, targets: tf.Tensor2D, weights: tf.Tensor2D, opts: ForwardOptions = {}): tf.Scalar {
    const [B, T] = ids.shape;
    const h = this.hidden(ids, opts);
    // Ids come from host arrays (the batcher, a prompt), so this read does not wait on a device.
    const tgt = targets.dataSync() as Int32Array;
    return chunkedLinearCrossEntropy(h, this.head, Int32Array.from(tgt), tf.reshape(weights, [B * T]) as tf.Tensor1D, this.vocabChunk);
  }

  /** The final-normed hidden states (B*T, C) for token ids (B, T): what the head multiplies. */
  hidden(ids: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor2D {
    const c = this.config;
    const [B, T] = ids.shape;
    if (T > c.maxPositionEmbeddings) {
      throw new Error(`sequence of ${T} tokens is longer than the model's context of ${c.maxPositionEmbeddings}`);
    }
    const shared = this.positionTensors(T);
    // A caller's key mask is this pass's own tensor; checkpointed blocks save it for their backward.
    const ownMask = opts.attentionMask ? attentionMask(T, opts.attentionMask) : undefined;
    const ctx: PassContext = { B, T, cos: shared.cos, sin: shared.sin, mask: ownMask ?? shared.causal };
    let x = this.embed.gather(ids.dataSync()); // (N, C)
    for (let l = 0; l < this.blocks.length; l++) {
      const seeds = this.drawSeeds(l, opts);
      const next = opts.gradientCheckpointing ? this.checkpointedBlock(l, x, ctx, seeds, ownMask !== undefined) : this.block(l, x, ctx, seeds);
      // A block's input is needed by that block only (its residual is inside it); under a
      // tape the block has saved what its backward needs, so free it now, not at scope end.
      x.dispose();
      x = next;
    }
    const out = rmsNorm(x, this.finalNorm, c.rmsNormEps);
    x.dispose();
    ownMask?.dispose();
    return out;
  }

  /**
   * cos/sin (T, hs) and the causal mask (T, T) for sequences of T tokens, kept across calls
   * (a checkpointed block's backward recomputes with them after the forward's scope ended).
   * Rebuilt when T changes; the previous pass's backward has finished by then.
   */
  private positionTensors(T: number): { cos: tf.Tensor2D; sin: tf.Tensor2D; causal: tf.Tensor2D } {
    if (this.positions?.T !== T) {
      const c = this.config;
      const { cos, sin } = ropeTables(T, c.headDim, this.invFreq);
      this.disposePositions();
      this.positions = {
        T,
        cos: tf.keep(tf.tensor2d(cos, [T, c.headDim])),
        sin: tf.keep(tf.tensor2d(sin, [T, c.headDim])),
        causal: tf.keep(causalMask(T)),
      };
    }
    return this.positions;
  }

  private disposePositions(): void {
    if (this.positions) tf.dispose([this.positions.cos, this.positions.sin, this.positions.causal]);
    this.positions = undefined;
  }

  private drawSeeds(l: number, opts: ForwardOptions): BlockSeeds {
    const seeds: BlockSeeds = {};
    if (!opts.dropoutSeed || !this.lora) return seeds;
    // Model order (q, k, v, o, gate, up, down): the same draws whether or not blocks are checkpointed.
    for (const m of LINEAR_MODULES) if (this.lora.get(linearName(l, m))) seeds[m] = opts.dropoutSeed();
    return seeds;
  }

  /** One decoder block: x + attention(norm(x)), then + mlp(norm(.)). x: (N, C). */
  private block(l: number, x: tf.Tensor2D, ctx: PassContext, seeds: BlockSeeds): tf.Tensor2D {
    return tf.tidy(() => {
      const c = this.config;
      const h = tf.add(x, this.attentionBlock(l, rmsNorm(x, this.blocks[l].inputNorm, c.rmsNormEps), ctx, seeds)) as tf.Tensor2D;
      return tf.add(h, this.mlpBlock(l, rmsNorm(h, this.blocks[l].postNorm, c.rmsNormEps), seeds));
    });
  }

  /**
   * The block as one op that saves only its input: its backward recomputes the block under
   * a tape of its own, takes the gradients for the input and this block's LoRA weights, and
   * frees the block's intermediates before the next block's backward starts.
   */
  private checkpointedBlock(l: number, x: tf.Tensor2D, ctx: PassContext, seeds: BlockSeeds, ownMask: boolean): tf.Tensor2D {
    const vars = this.blockVariables(l);
    const op = tf.customGrad(((...args: unknown[]) => {
      const xIn = args[0] as tf.Tensor2D;
      const save = args[args.length - 1] as tf.GradSaveFunc;
      const y = this.block(l, xIn, ctx, seeds);
      save(ownMask ? [xIn, ctx.mask] : [xIn]);
      return {
        value: y,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const again: PassContext = { ...ctx, mask: ownMask ? saved[1] : ctx.mask };
          const recompute = () => this.block(l, saved[0] as tf.Tensor2D, again, seeds);
          if (!inputIsConstant(l)) return recomputeGradients(recompute, [saved[0], ...vars], dy);
          // Nothing upstream of this block trains: its input's gradient would be dropped.
          return [tf.zerosLike(saved[0]), ...(vars.length ? recomputeGradients(recompute, vars, dy) : [])];
        },
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return op(x, ...vars) as tf.Tensor2D;
  }

  /** The LoRA A and B of block l's adapted projections, in model order. */
  private blockVariables(l: number): tf.Variable[] {
    if (!this.lora) return [];
    return LINEAR_MODULES.flatMap((m) => {
      const a = this.lora!.get(linearName(l, m));
      return a ? [a.A, a.B] : [];
    });
  }

  /** `inputGrad` false: x depends on no trainable weight, so its gradient is never asked for. */
  private linear(l: number, m: LinearModule, x: tf.Tensor2D, seeds: BlockSeeds, inputGrad = true): tf.Tensor2D {
    const block = this.blocks[l];
    const adapter = this.lora?.get(linearName(l, m));
    const bias = block.bias && (m === 'q_proj' || m === 'k_proj' || m === 'v_proj') ? block.bias[m] : undefined;
    if (adapter && loraLinearRuns()) {
      const y = loraLinear(x, block.proj[m], adapter, seeds[m], { inputGrad }); // one native call each way (model/loraLinear.ts)
      return bias ? tf.add(y, bias) : y;
    }
    let y = frozenLinear(x, block.proj[m]);
    if (bias) y = tf.add(y, bias);
    if (adapter) y = tf.add(y, adapter.delta(x, seeds[m]));
    return y;
  }

  private attentionBlock(l: number, x: tf.Tensor2D, ctx: PassContext, seeds: BlockSeeds): tf.Tensor2D {
    const c = this.config;
    const { B, T, cos, sin, mask } = ctx;
    const fromInput = !inputIsConstant(l); // x = norm(block input)
    const q = applyRope(splitHeads(this.linear(l, 'q_proj', x, seeds, fromInput), B, T, c.numHeads, c.headDim), cos, sin);
    const k = applyRope(splitHeads(this.linear(l, 'k_proj', x, seeds, fromInput), B, T, c.numKvHeads, c.headDim), cos, sin);
    const v = splitHeads(this.linear(l, 'v_proj', x, seeds, fromInput), B, T, c.numKvHeads, c.headDim);
    const nRep = c.numHeads / c.numKvHeads;
    const y = attention(q, repeatKv(k, nRep), repeatKv(v, nRep), mask); // (B, nh, T, hs)
    return this.linear(l, 'o_proj', mergeHeads(y), seeds);
  }

  private mlpBlock(l: number, x: tf.Tensor2D, seeds: BlockSeeds): tf.Tensor2D {
    const gate = this.linear(l, 'gate_proj', x, seeds);
    const up = this.linear(l, 'up_proj', x, seeds);
    return this.linear(l, 'down_proj', swiglu(gate, up), seeds);
  }

  /**
   * The model's own pieces, for decoding one position at a time with a KV cache
   * (generate/kvCache.ts): the same weights, adapters and rotary tables as forward().
   */
  decoderPieces(): DecoderPieces {
    const c = this.config;
    return {
      embed: (ids) => this.embed.gather(ids.dataSync()),
      inputNorm: (l, x) => rmsNorm(x, this.blocks[l].inputNorm, c.rmsNormEps),
      postNorm: (l, x) => rmsNorm(x, this.blocks[l].postNorm, c.rmsNormEps),
      linear: (l, m, x) => this.linear(l, m, x, {}),
      mlp: (l, x) => this.mlpBlock(l, x, {}),
      logits: (x) => chunkedLogits(rmsNorm(x, this.finalNorm, c.rmsNormEps), this.head, this.vocabChunk),
      rope: (start, T) => {
        const { cos, sin } = ropeTables(start + T, c.headDim, this.invFreq);
        const from = start * c.headDim;
        return [tf.tensor2d(cos.subarray(from), [T, c.headDim]), tf.tensor2d(sin.subarray(from), [T, c.headDim])];
      },
    };
  }

  /**
   * Bytes held: the block projections (quantized, on the backend), the compact embedding and
   * head tables (on the host; a tied head counts once), and the small tensors.
   */
  residentBytes(): { projections: number; projectionParams: number; other: number; tables: number } {
    let projections = 0, projectionParams = 0;
    for (const b of this.blocks) {
      for (const m of LINEAR_MODULES) {
        projections += b.proj[m].residentBytes();
        projectionParams += b.proj[m].shape[0] * b.proj[m].shape[1];
      }
    }
    const t = [this.finalNorm,
      ...this.blocks.flatMap((b) => [b.inputNorm, b.postNorm, ...(b.bias ? Object.values(b.bias) : [])])];
    const tables = this.embed.residentBytes() + (this.head === this.embed ? 0 : this.head.residentBytes());
    const other = t.reduce((n, x) => n + x.size * 4, 0) + tables;
    return { projections, projectionParams, other, tables };
  }

  /** The frozen projection weight of one block as float32 on the host, [out, in]. */
  async projectionWeight(l: number, m: LinearModule): Promise<Float32Array> {
    const w = this.blocks[l].proj[m].dequantize();
    const d = (await w.data()) as Float32Array;
    w.dispose();
    return d;
  }

  dispose(): void {
    this.finalNorm.dispose();
    this.disposePositions();
    for (const b of this.blocks) {
      b.inputNorm.dispose();
      b.postNorm.dispose();
      for (const m of LINEAR_MODULES) b.proj[m].dispose();
      if (b.bias) Object.values(b.bias).forEach((t) => t.dispose());
    }
    this.lora?.dispose();
  }
}

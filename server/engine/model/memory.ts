// What the model and one training step hold, in bytes, under the engine's memory design:
// the figures a memory plan (the cost lens, a pre-flight check) is computed from.
//
// The design (llama.ts, chunkedLoss.ts, frozenTable.ts):
// - Embedding and an untied head: one table each on the host, outside the backend's heap,
//   holding the checkpoint's values exactly: 2 bytes a value for bf16/fp16 checkpoints
//   (every real model's), 4 for an fp32 export. A tied head is the embedding table.
//   Dequantized per batch of token rows and per vocabulary chunk.
// - With gradient checkpointing (the default), each decoder block saves only its input
//   (N x C fp32) for the backward pass; the backward keeps each block output's gradient
//   (another N x C) until it ends. One block is recomputed at a time, under a tape of its
//   own, so its full set of intermediates exists for one block only.
// - Without checkpointing every block's intermediates stay on the tape until the backward
//   pass ends.
// - The loss never holds N x V logits: one (N, vocabChunk) chunk and one (vocabChunk, C)
//   slice of the head at a time, forward and (recomputed) backward.
//
// The per-token coefficients are fp32 values per token per block held by TensorFlow.js's
// tape for one block (outputs, the tape's saved copies, gradients kept until the end of
// backprop). They were measured on the wasm backend (where the tape's saved tensors are
// real copies) with tf.profile peak bytes, as differences between models that differ in one
// dimension (test/tools/measureActivations.ts prints them beside this plan): per token and block,
// 68.75 values per hidden unit and per query unit, 16.75 per key/value unit, 30.4 per MLP
// unit and 8.7 per attention score (heads x T). The cpu backend shares saved tensors
// instead of copying, so these are an upper bound there; so they are where the native
// provider runs the fused LoRA projection (loraLinear.ts), whose tape holds about 0.75 to
// 0.8 of this (test/tools/measureActivations.ts with the provider on).
import type { LlamaConfig } from './config';
import { DEFAULT_VOCAB_CHUNK } from './chunkedLoss';

const F32 = 4;

/** fp32 values per token held by one block's tape (see the header for how they were measured). */
// With the fused RMSNorm, RoPE, SwiGLU and softmax kernels (ops/) and the wasm Identity that
// shares data, the tape holds about 0.65 of what the composite ops held: the values below are
// the first measurement (68.75, 68.75, 16.75, 30.4, 8.7) times 0.65, re-checked with
// test/tools/measureActivations.ts on the six shapes it varies.
export const BLOCK_TAPE_VALUES = { hidden: 44.7, query: 44.7, keyValue: 10.9, intermediate: 19.8, scorePerPosition: 5.65 } as const;

/** With checkpointing: fp32 vectors of the hidden size per token and block kept to the end of backward (saved input + its gradient). */
export const CHECKPOINT_VECTORS_PER_LAYER = 2;

export interface StepShape {
  /** Sequence length T (max_seq_len: the batcher pads to the longest row, at most this). */
  seqLen: number;
  /** Rows B (micro_batch_size). */
  microBatch: number;
  gradientCheckpointing: boolean;
  /** Vocabulary rows per loss chunk; DEFAULT_VOCAB_CHUNK unless changed on the model. */
  vocabChunk?: number;
}

/**
 * Bytes of the embedding and head tables (on the host, not the backend heap): 2 bytes a
 * value for a bf16 or fp16 checkpoint, 4 for one stored in fp32 (FrozenTable keeps values exactly).
 */
export function frozenTableBytes(c: LlamaConfig, opts: { bytesPerValue?: 2 | 4 } = {}): { embedding: number; head: number } {
  const bytes = c.vocabSize * c.hiddenSize * (opts.bytesPerValue ?? 2);
  return { embedding: bytes, head: c.tieWordEmbeddings ? 0 : bytes };
}

/** Bytes one block's tape holds per token, for sequences of T tokens. */
export function blockTapeBytesPerToken(c: LlamaConfig, T: number): number {
  const k = BLOCK_TAPE_VALUES;
  const q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
  return F32 * (k.hidden * c.hiddenSize + k.query * q + k.keyValue * kv + k.intermediate * c.intermediateSize +
    k.scorePerPosition * c.numHeads * T);
}

export interface ActivationPlan {
  /** Tokens N = B x T in the micro-batch. */
  tokens: number;
  /** Bytes per token per layer held from the forward pass to the end of the backward pass. */
  heldPerTokenPerLayer: number;
  /** heldPerTokenPerLayer x N x layers, plus the final norm's and the loss's saved hidden states. */
  held: number;
  /** The largest transient on top of `held` from the blocks: one block's tape (checkpointing) or none. */
  blockPeak: number;
  /** The loss's transient: one chunk of scores, its softmax and gradient, one dequantized head slice. */
  lossPeak: number;
  /** held + max(blockPeak, lossPeak): the activation part of a step's peak on the backend. */
  peak: number;
  vocabChunk: number;
}

/**
 * Activation bytes of one forward + backward pass on the backend (not the weights, the LoRA
 * parameters, their gradients or AdamW moments: r x (in + out) fp32 values per adapted
 * projection, each, count those separately).
 */
export function activationPlan(c: LlamaConfig, s: StepShape): ActivationPlan {
  const T = s.seqLen, N = s.microBatch * T, C = c.hiddenSize, L = c.numLayers;
  const v = Math.min(c.vocabSize, s.vocabChunk ?? DEFAULT_VOCAB_CHUNK);
  const tape = blockTapeBytesPerToken(c, T);
  const heldPerTokenPerLayer = s.gradientCheckpointing ? CHECKPOINT_VECTORS_PER_LAYER * C * F32 : tape;
  // Final RMSNorm on the outer tape (about four hidden vectors) and the loss's saved h.
  const held = heldPerTokenPerLayer * N * L + 5 * C * F32 * N;
  const blockPeak = s.gradientCheckpointing ? tape * N : 0;
  // Scores, exp, probabilities and their transpose (4 x N x v); the head slice and the
  // gathered target rows; the running dh and its next value.
  const lossPeak = F32 * (4 * N * v + v * C + 3 * N * C);
  return { tokens: N, heldPerTokenPerLayer, held, blockPeak, lossPeak, peak: held + Math.max(blockPeak, lossPeak), vocabChunk: v };
}

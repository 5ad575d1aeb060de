// llama2.c checkpoints (karpathy/llama2.c `export.py`), read into Hugging Face names and layout.
//
// Legacy (version 0): 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len; a negative vocab_size means the classifier is not shared with the embedding), then
// float32: tok_embeddings, rms_att[L], wq[L], wk[L], wv[L], wo[L], rms_ffn[L], w1[L], w2[L],
// w3[L], rms_final, two [seq_len, head_dim/2] rotary tables (unused), classifier if unshared.
// Version 1: uint32 magic "ak42", int32 version, the same 7 int32, a uint8 shared-classifier
// flag, zero padding to 256 bytes, then float32 in `version1_export` order: rms_att[L],
// rms_ffn[L], rms_final, tok_embeddings, wq[L], wk[L], wv[L], wo[L], w1[L], w2[L], w3[L],
// classifier if unshared. Version 2 (int8 Q8_0) is refused.
//
// llama2.c rotates interleaved pairs (i, i+1) of each head; LlamaForCausalLM rotates halves
// (rotate_half). wq and wk rows are permuted as llama2.c's and transformers' Llama converters
// do, so adapters trained here are valid for the checkpoint's Hugging Face conversion.
import { closeSync, fstatSync, openSync } from 'node:fs';
import type { LlamaConfig } from '../model/config';
import { readBytesAt, readFloat32At } from './binaryFile';
import { HostTensor, ModelFormatError, WeightMap } from './types';

export const LLAMA2C_MAGIC = 0x616b3432; // "ak42"
const LEGACY_HEADER_BYTES = 28;
const V1_HEADER_BYTES = 256;

export interface Llama2cHeader {
  /** 0 for the legacy format. */
  version: 0 | 1;
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number; // always positive here; sharing is `sharedClassifier`
  seqLen: number;
  sharedClassifier: boolean;
  headerBytes: number;
}

function describe(h: Llama2cHeader): string {
  return `dim ${h.dim}, hidden_dim ${h.hiddenDim}, n_layers ${h.nLayers}, n_heads ${h.nHeads}, n_kv_heads ${h.nKvHeads}, ` +
    `vocab_size ${h.vocabSize}, seq_len ${h.seqLen}, ${h.sharedClassifier ? 'shared' : 'separate'} classifier, ` +
    (h.version === 0 ? 'legacy format' : 'version 1');
}

/** Parses the 28- or 256-byte header from its first bytes (at least 28, or 256 for version 1). */
export function parseLlama2cHeader(bytes: Uint8Array, file: string): Llama2cHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < LEGACY_HEADER_BYTES) {
    throw new ModelFormatError(file, `${bytes.byteLength} bytes is too short for a llama2.c checkpoint header (28 bytes)`);
  }
  let version: 0 | 1 = 0;
  let at = 0;
  let sharedFlag: boolean | undefined;
  if (view.getUint32(0, true) === LLAMA2C_MAGIC) {
    const v = view.getInt32(4, true);
    if (v === 2) {
      throw new ModelFormatError(file, 'is an int8 (Q8_0, version 2) llama2.c checkpoint; only float32 checkpoints are supported (export with --version 0 or 1)');
    }
    if (v !== 1) throw new ModelFormatError(file, `has llama2.c version ${v}; only the legacy format and version 1 are supported`);
    if (bytes.byteLength < V1_HEADER_BYTES) throw new ModelFormatError(file, `is shorter than the 256-byte version 1 header (${bytes.byteLength} bytes)`);
    version = 1;
    at = 8;
    sharedFlag = view.getUint8(36) !== 0;
  }
  const ints = Array.from({ length: 7 }, (_, i) => view.getInt32(at + 4 * i, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = ints;
  const h: Llama2cHeader = {
    version, dim, hiddenDim, nLayers, nHeads, nKvHeads,
    vocabSize: Math.abs(vocab), seqLen,
    sharedClassifier: sharedFlag ?? vocab > 0,
    headerBytes: version === 0 ? LEGACY_HEADER_BYTES : V1_HEADER_BYTES,
  };
  const plausible = [dim, hiddenDim, nLayers, nHeads, nKvHeads, seqLen].every((v) => v > 0) && vocab !== 0 &&
    dim % nHeads === 0 && nHeads % nKvHeads === 0 && (dim / nHeads) % 2 === 0;
  if (!plausible) {
    throw new ModelFormatError(file, `header [${ints.join(', ')}] is not a llama2.c checkpoint's (needs positive sizes, dim divisible by n_heads into even head sizes, n_heads a multiple of n_kv_heads)`);
  }
  return h;
}

/** Reads only the header: cheap enough for the language server. */
export function readLlama2cHeader(file: string): Llama2cHeader {
  const fd = open(file);
  try {
    const size = fstatSync(fd).size;
    return parseLlama2cHeader(readBytesAt(fd, 0, Math.min(size, V1_HEADER_BYTES), file), file);
  } finally {
    closeSync(fd);
  }
}

export function llama2cConfig(h: Llama2cHeader): LlamaConfig {
  return {
    family: 'llama',
    vocabSize: h.vocabSize,
    hiddenSize: h.dim,
    intermediateSize: h.hiddenDim,
    numLayers: h.nLayers,
    numHeads: h.nHeads,
    numKvHeads: h.nKvHeads,
    headDim: h.dim / h.nHeads,
    maxPositionEmbeddings: h.seqLen,
    rmsNormEps: 1e-5, // llama2.c's ModelArgs.norm_eps
    ropeTheta: 10000,
    tieWordEmbeddings: h.sharedClassifier,
    attentionBias: false,
    bosTokenId: 1,
    eosTokenId: 2,
  };
}

/** One run of float32 tensors in the file: a name pattern, a per-tensor shape, and how many (1 or n_layers). */
interface Section {
  /** Hugging Face name; `L` is replaced by the layer index. Null for data that is skipped. */
  name: string | null;
  shape: number[];
  layers: number;
}

function sections(h: Llama2cHeader): Section[] {
  const { dim: D, hiddenDim: H, nLayers: L, vocabSize: V } = h;
  const kvDim = (D / h.nHeads) * h.nKvHeads;
  const s = (name: string | null, shape: number[], layers = 1): Section => ({ name, shape, layers });
  const attNorm = s('model.layers.L.input_layernorm.weight', [D], L);
  const ffnNorm = s('model.layers.L.post_attention_layernorm.weight', [D], L);
  const finalNorm = s('model.norm.weight', [D]);
  const embed = s('model.embed_tokens.weight', [V, D]);
  const projections = [
    s('model.layers.L.self_attn.q_proj.weight', [D, D], L),
    s('model.layers.L.self_attn.k_proj.weight', [kvDim, D], L),
    s('model.layers.L.self_attn.v_proj.weight', [kvDim, D], L),
    s('model.layers.L.self_attn.o_proj.weight', [D, D], L),
  ];
  const mlp = [
    s('model.layers.L.mlp.gate_proj.weight', [H, D], L), // w1
    s('model.layers.L.mlp.down_proj.weight', [D, H], L), // w2
    s('model.layers.L.mlp.up_proj.weight', [H, D], L), // w3
  ];
  const classifier = h.sharedClassifier ? [] : [s('lm_head.weight', [V, D])];
  if (h.version === 1) return [attNorm, ffnNorm, finalNorm, embed, ...projections, ...mlp, ...classifier];
  const rotaryTables = s(null, [2 * h.seqLen * (D / h.nHeads / 2)]); // freq_cis_real and _imag
  return [embed, attNorm, ...projections, ffnNorm, ...mlp, finalNorm, rotaryTables, ...classifier];
}

/** The exact size in bytes of a checkpoint with this header. */
export function llama2cFileBytes(h: Llama2cHeader): number {
  let floats = 0;
  for (const sec of sections(h)) floats += sec.layers * sec.shape.reduce((a, b) => a * b, 1);
  return h.headerBytes + 4 * floats;
}

/** A truncated or overlong checkpoint is refused before any weight is read. */
export function checkLlama2cFileSize(h: Llama2cHeader, size: number, file: string): void {
  const expected = llama2cFileBytes(h);
  if (size === expected) return;
  const why = size < expected ? 'truncated' : `${size - expected} bytes too many`;
  throw new ModelFormatError(file, `expected ${expected} bytes from its header (${describe(h)}) but the file has ${size} bytes (${why})`);
}

/**
 * Rows of a llama2.c wq/wk ([nHeads * headDim, cols]) from interleaved rotary pairs to
 * rotate_half order: within each head, row 2i + j moves to row j * headDim/2 + i. This is
 * `w.view(n_heads, head_dim // 2, 2, cols).transpose(1, 2).reshape(rows, cols)`.
 */
export function permuteRotaryRows(w: Float32Array, nHeads: number, cols: number): Float32Array {
  const rows = w.length / cols;
  const headDim = rows / nHeads;
  const half = headDim / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const from = (h * headDim + 2 * i + j) * cols;
        const to = (h * headDim + j * half + i) * cols;
        out.set(w.subarray(from, from + cols), to);
      }
    }
  }
  return out;
}

/** A llama2.c checkpoint as a LlamaConfig and Hugging Face-named float32 weights. */
export function readLlama2cCheckpoint(file: string): { header: Llama2cHeader; config: LlamaConfig; weights: WeightMap } {
  const fd = open(file);
  try {
    const size = fstatSync(fd).size;
    const header = parseLlama2cHeader(readBytesAt(fd, 0, Math.min(size, V1_HEADER_BYTES), file), file);
    checkLlama2cFileSize(header, size, file);
    const weights: WeightMap = new Map();
    let position = header.headerBytes;
    for (const sec of sections(header)) {
      const count = sec.shape.reduce((a, b) => a * b, 1);
      for (let layer = 0; layer < sec.layers; layer++) {
        if (sec.name !== null) {
          let data = readFloat32At(fd, position, count, file);
          if (sec.name.endsWith('q_proj.weight')) data = permuteRotaryRows(data, header.nHeads, header.dim);
          if (sec.name.endsWith('k_proj.weight')) data = permuteRotaryRows(data, header.nKvHeads, header.dim);
          const tensor: HostTensor = { shape: [...sec.shape], data };
          weights.set(sec.name.replace('.L.', `.${layer}.`), tensor);
        }
        position += 4 * count;
      }
    }
    return { header, config: llama2cConfig(header), weights };
  } finally {
    closeSync(fd);
  }
}

function open(file: string): number {
  try {
    return openSync(file, 'r');
  } catch (err) {
    throw new ModelFormatError(file, `cannot open (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

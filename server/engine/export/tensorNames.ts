// Hugging Face Llama parameter names as llama.cpp names them, and the row order llama.cpp's
// rotary embedding expects for q and k.
//
// Hugging Face rotates pairs (i, i + headDim/2) of each head ("rotate_half"); llama.cpp's
// LLAMA rope (type NORM) rotates adjacent pairs (2i, 2i+1). The same model therefore stores
// q_proj's and k_proj's rows in a different order per head: llama.cpp's converter permutes
// them (convert_hf_to_gguf.py LlamaModel.permute), the inverse of what llama2.c's Hugging
// Face export (and this project's llama2.c importer, formats/llama2c.ts) does. Heads of q,
// kv heads of k. A LoRA B matrix's rows are q's or k's output rows, so B is permuted the same
// way; A acts on the input and is left alone.
import type { LlamaConfig } from '../model/config';

const BLOCK: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'self_attn.q_proj.bias': 'attn_q.bias',
  'self_attn.k_proj.bias': 'attn_k.bias',
  'self_attn.v_proj.bias': 'attn_v.bias',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.down_proj.weight': 'ffn_down.weight',
};

/** The GGUF tensor name of a Hugging Face parameter; throws on a name the export does not know. */
export function ggufTensorName(hfName: string): string {
  if (hfName === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hfName === 'model.norm.weight') return 'output_norm.weight';
  if (hfName === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hfName);
  const part = m ? BLOCK[m[2]] : undefined;
  if (!m || !part) throw new Error(`no GGUF name for tensor "${hfName}"`);
  return `blk.${m[1]}.${part}`;
}

/**
 * The number of rotary heads whose rows a tensor's rows must be permuted over, or 0 when the
 * tensor keeps its order. Only the LLAMA architecture (rope type NORM) permutes; Qwen2 uses
 * rotate_half in llama.cpp too (NEOX).
 */
export function rotaryHeadsOf(hfName: string, c: LlamaConfig): number {
  if (c.family === 'qwen2') return 0;
  if (/\.self_attn\.q_proj\.(weight|bias)$/.test(hfName)) return c.numHeads;
  if (/\.self_attn\.k_proj\.(weight|bias)$/.test(hfName)) return c.numKvHeads;
  return 0;
}

/**
 * Rows from rotate_half order (per head: first halves, then second halves) to interleaved
 * order: out row h*hd + 2i + j = in row h*hd + j*hd/2 + i. `w` is (rows, cols) row-major; a
 * new array is returned.
 */
export function interleaveRotaryRows(w: Float32Array, nHeads: number, cols: number): Float32Array {
  const rows = w.length / cols;
  const headDim = rows / nHeads;
  if (!Number.isInteger(rows) || !Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new Error(`cannot permute ${w.length} values as ${nHeads} rotary heads of rows of ${cols}`);
  }
  const half = headDim / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const from = (h * headDim + j * half + i) * cols;
        const to = (h * headDim + 2 * i + j) * cols;
        out.set(w.subarray(from, from + cols), to);
      }
    }
  }
  return out;
}

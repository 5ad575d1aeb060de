// A tokenizer as GGUF's `tokenizer.ggml.*` keys, so that llama.cpp splits text into the same
// ids as this project:
// - llama2.c vocabularies are SentencePiece BPE: model `llama`, pieces in SentencePiece
//   spelling ("▁" for spaces) with their own scores; llama.cpp's SPM tokenizer merges the
//   highest-scoring pair first, which is what run.c (and Llama2cTokenizer) do.
// - A Hugging Face BPE with byte fallback (converted from SentencePiece) is also `llama`;
//   its file has merges, not scores, so each piece scores minus the rank of the merge that
//   makes it (a flat score splits differently).
// - A byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM) is `gpt2`: the vocabulary as written,
//   the merges, and `tokenizer.ggml.pre` naming the pre-tokenizer regex llama.cpp applies.
// Token types follow llama.cpp's llama_token_type: NORMAL 1, UNKNOWN 2, CONTROL 3,
// USER_DEFINED 4, UNUSED 5, BYTE 6. A vocabulary shorter than the embedding is padded with
// UNUSED [PADn] tokens, as llama.cpp's converter does.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HuggingFaceTokenizer } from '../tokenizer/huggingface';
import { Llama2cTokenizer } from '../tokenizer/llama2c';
import type { Tokenizer } from '../tokenizer/types';
import type { GgufValue } from './ggufWriter';

const NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6;
const SPACE = '▁';
/** Scores of SentencePiece pieces no merge makes: below every merge-derived score. */
const UNREACHABLE_SCORE = -1e9;

/** Pre-tokenizer regexes llama.cpp knows, by its `tokenizer.ggml.pre` name. */
const KNOWN_PRE: [string, string][] = [
  ['llama-bpe', "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"],
  ['qwen2', "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"],
];

export interface VocabKeys {
  kv: Map<string, GgufValue>;
  /** Tokens written (the embedding's rows). */
  size: number;
  model: 'llama' | 'gpt2';
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function padTo(tokens: string[], types: number[], scores: number[] | null, size: number): void {
  for (let i = tokens.length; i < size; i++) {
    tokens.push(`[PAD${i}]`);
    types.push(UNUSED);
    scores?.push(UNREACHABLE_SCORE);
  }
}

function common(kv: Map<string, GgufValue>, tok: Tokenizer, addBos: boolean): void {
  kv.set('tokenizer.ggml.bos_token_id', { type: 'u32', value: tok.bosId });
  kv.set('tokenizer.ggml.eos_token_id', { type: 'u32', value: tok.eosId });
  kv.set('tokenizer.ggml.add_bos_token', { type: 'bool', value: addBos });
  kv.set('tokenizer.ggml.add_eos_token', { type: 'bool', value: false });
  if (tok.chatTemplate) kv.set('tokenizer.chat_template', { type: 'string', value: tok.chatTemplate });
}

function fromLlama2c(tok: Llama2cTokenizer, size: number): VocabKeys {
  const tokens: string[] = [], types: number[] = [], scores: number[] = [];
  const control: Record<number, string> = { [tok.unkId]: '<unk>', [tok.bosId]: '<s>', [tok.eosId]: '</s>' };
  for (let id = 0; id < tok.vocabSize; id++) {
    tokens.push(control[id] ?? tok.pieces[id].replaceAll(' ', SPACE));
    types.push(id === tok.unkId ? UNKNOWN : tok.isSpecial(id) ? CONTROL : tok.byteOf[id] >= 0 ? BYTE : NORMAL);
    scores.push(tok.scores[id]);
  }
  padTo(tokens, types, scores, size);
  const kv = new Map<string, GgufValue>([
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'string[]', value: tokens }],
    ['tokenizer.ggml.scores', { type: 'f32[]', value: scores }],
    ['tokenizer.ggml.token_type', { type: 'i32[]', value: types }],
    ['tokenizer.ggml.unknown_token_id', { type: 'u32', value: tok.unkId }],
  ]);
  common(kv, tok, true);
  return { kv, size: tokens.length, model: 'llama' };
}

function kinds(node: Json | null | undefined): Json[] {
  if (!node) return [];
  if (node.type === 'Sequence') return [...(node.pretokenizers ?? node.normalizers ?? node.decoders ?? []).flatMap((n: Json) => kinds(n))];
  return [node];
}

/** llama.cpp's name for the file's pre-tokenizer, or an error naming what it is. */
function preTokenizerName(pre: Json | null, file: string): string {
  const parts = kinds(pre);
  const split = parts.find((p) => p.type === 'Split' && typeof p.pattern?.Regex === 'string');
  if (split) {
    const known = KNOWN_PRE.find(([, regex]) => regex === split.pattern.Regex);
    if (known) return known[0];
    throw new Error(`${file}: pre_tokenizer splits with the regex ${JSON.stringify(split.pattern.Regex)}, which no llama.cpp pre-tokenizer this export knows uses (known: Llama 3, Qwen2, GPT-2, SmolLM)`);
  }
  const byteLevel = parts.find((p) => p.type === 'ByteLevel');
  const digits = parts.find((p) => p.type === 'Digits');
  if (byteLevel && byteLevel.use_regex !== false && digits?.individual_digits === true && parts.length === 2) return 'smollm';
  if (byteLevel && byteLevel.use_regex !== false && parts.length === 1) return 'gpt-2';
  throw new Error(`${file}: pre_tokenizer ${JSON.stringify(pre)} is not one llama.cpp knows (known: Llama 3, Qwen2, GPT-2, SmolLM)`);
}

function fromHuggingFace(tok: HuggingFaceTokenizer, size: number): VocabKeys {
  const file = join(tok.dir, 'tokenizer.json');
  const json = JSON.parse(readFileSync(file, 'utf8')) as Json;
  const configFile = join(tok.dir, 'tokenizer_config.json');
  const config = existsSync(configFile) ? JSON.parse(readFileSync(configFile, 'utf8')) as Json : {};
  const model = json.model as Json;
  if (model?.type !== 'BPE') throw new Error(`${file}: model.type is ${JSON.stringify(model?.type)}; GGUF export supports BPE tokenizers`);
  const vocab = model.vocab as Record<string, number>;
  const tokens: string[] = [];
  const types: number[] = [];
  for (const [piece, id] of Object.entries(vocab)) { tokens[id] = piece; types[id] = NORMAL; }
  for (const t of (json.added_tokens ?? []) as Json[]) { tokens[t.id] = t.content; types[t.id] = t.special ? CONTROL : USER_DEFINED; }
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] === undefined) { tokens[i] = `[PAD${i}]`; types[i] = UNUSED; }
  }
  const merges = ((model.merges ?? []) as (string | [string, string])[]).map((m) => (Array.isArray(m) ? m.join(' ') : m));
  const byteLevel = [...kinds(json.pre_tokenizer), ...kinds(json.decoder)].some((p) => p.type === 'ByteLevel');
  const kv = new Map<string, GgufValue>();
  const addBos = typeof config.add_bos_token === 'boolean' ? config.add_bos_token : true;
  if (byteLevel) {
    padTo(tokens, types, null, size);
    kv.set('tokenizer.ggml.model', { type: 'string', value: 'gpt2' });
    kv.set('tokenizer.ggml.pre', { type: 'string', value: preTokenizerName(json.pre_tokenizer, file) });
    kv.set('tokenizer.ggml.tokens', { type: 'string[]', value: tokens });
    kv.set('tokenizer.ggml.token_type', { type: 'i32[]', value: types });
    kv.set('tokenizer.ggml.merges', { type: 'string[]', value: merges });
    common(kv, tok, addBos);
    return { kv, size: tokens.length, model: 'gpt2' };
  }
  if (model.byte_fallback !== true) {
    throw new Error(`${file}: a BPE tokenizer that is neither byte-level nor SentencePiece-style (byte_fallback) has no GGUF tokenizer model`);
  }
  // SentencePiece-style: scores from merge ranks; byte pieces typed BYTE.
  const scores = tokens.map(() => UNREACHABLE_SCORE);
  merges.forEach((m, rank) => {
    const id = vocab[m.replace(' ', '')];
    if (id !== undefined && scores[id] === UNREACHABLE_SCORE) scores[id] = -rank;
  });
  tokens.forEach((t, id) => { if (/^<0x[0-9A-F]{2}>$/.test(t)) types[id] = BYTE; });
  const unk = typeof model.unk_token === 'string' ? vocab[model.unk_token] : undefined;
  if (unk !== undefined) types[unk] = UNKNOWN;
  padTo(tokens, types, scores, size);
  kv.set('tokenizer.ggml.model', { type: 'string', value: 'llama' });
  kv.set('tokenizer.ggml.tokens', { type: 'string[]', value: tokens });
  kv.set('tokenizer.ggml.scores', { type: 'f32[]', value: scores });
  kv.set('tokenizer.ggml.token_type', { type: 'i32[]', value: types });
  if (unk !== undefined) kv.set('tokenizer.ggml.unknown_token_id', { type: 'u32', value: unk });
  common(kv, tok, addBos);
  return { kv, size: tokens.length, model: 'llama' };
}

/** The tokenizer keys for a model whose embedding has `embeddingRows` rows. */
export function vocabKeys(tok: Tokenizer, embeddingRows: number): VocabKeys {
  let keys: VocabKeys;
  if (tok instanceof Llama2cTokenizer) keys = fromLlama2c(tok, embeddingRows);
  else if (tok instanceof HuggingFaceTokenizer) keys = fromHuggingFace(tok, embeddingRows);
  else throw new Error('GGUF export needs a tokenizer loaded from a llama2.c or Hugging Face model');
  if (keys.size !== embeddingRows) {
    throw new Error(`the tokenizer has ${keys.size} tokens but the embedding has ${embeddingRows} rows`);
  }
  return keys;
}

// Tiny llama2.c files built byte by byte from the layouts in karpathy/llama2.c export.py and
// tokenizer.py, independently of the readers under test. Checkpoint values are their own
// float index in the data section (0, 1, 2, ...), so a test can tell where every weight came from.
import { writeFileSync } from 'node:fs';

export interface TinyDims {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
}

export const TINY: TinyDims = { dim: 8, hiddenDim: 12, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 272, seqLen: 16 };

/** One tensor of the file, in file order: llama2.c name, layer (or -1), shape. */
export interface FileTensor {
  name: string;
  layer: number;
  shape: number[];
}

/** The tensors in the order export.py writes them (legacy_export / version1_export). */
export function fileOrder(d: TinyDims, version: 0 | 1, shared: boolean): FileTensor[] {
  const hs = d.dim / d.nHeads;
  const kv = hs * d.nKvHeads;
  const perLayer = (name: string, shape: number[]) => Array.from({ length: d.nLayers }, (_, layer) => ({ name, layer, shape }));
  const one = (name: string, shape: number[]) => [{ name, layer: -1, shape }];
  const wq = perLayer('wq', [d.dim, d.dim]);
  const wk = perLayer('wk', [kv, d.dim]);
  const wv = perLayer('wv', [kv, d.dim]);
  const wo = perLayer('wo', [d.dim, d.dim]);
  const w1 = perLayer('w1', [d.hiddenDim, d.dim]);
  const w2 = perLayer('w2', [d.dim, d.hiddenDim]);
  const w3 = perLayer('w3', [d.hiddenDim, d.dim]);
  const output = shared ? [] : one('output', [d.vocabSize, d.dim]);
  if (version === 1) {
    return [
      ...perLayer('attention_norm', [d.dim]), ...perLayer('ffn_norm', [d.dim]), ...one('norm', [d.dim]),
      ...one('tok_embeddings', [d.vocabSize, d.dim]), ...wq, ...wk, ...wv, ...wo, ...w1, ...w2, ...w3, ...output,
    ];
  }
  return [
    ...one('tok_embeddings', [d.vocabSize, d.dim]), ...perLayer('attention_norm', [d.dim]), ...wq, ...wk, ...wv, ...wo,
    ...perLayer('ffn_norm', [d.dim]), ...w1, ...w2, ...w3, ...one('norm', [d.dim]),
    ...one('freqs_cos', [d.seqLen, hs / 2]), ...one('freqs_sin', [d.seqLen, hs / 2]), ...output,
  ];
}

export const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Float offset of each file tensor within the data section. */
export function offsets(order: FileTensor[]): Map<string, number> {
  const out = new Map<string, number>();
  let at = 0;
  for (const t of order) {
    out.set(`${t.name}.${t.layer}`, at);
    at += numel(t.shape);
  }
  return out;
}

/** A checkpoint whose k-th data float is k. Returns its bytes. */
export function tinyCheckpointBytes(d: TinyDims, version: 0 | 1, shared: boolean): Buffer {
  const floats = fileOrder(d, version, shared).reduce((n, t) => n + numel(t.shape), 0);
  const data = Buffer.alloc(4 * floats);
  for (let k = 0; k < floats; k++) data.writeFloatLE(k, 4 * k);
  const ints = [d.dim, d.hiddenDim, d.nLayers, d.nHeads, d.nKvHeads, d.vocabSize, d.seqLen];
  if (version === 0) {
    const header = Buffer.alloc(28);
    ints.forEach((v, i) => header.writeInt32LE(i === 5 && !shared ? -v : v, 4 * i));
    return Buffer.concat([header, data]);
  }
  const header = Buffer.alloc(256);
  header.writeUInt32LE(0x616b3432, 0);
  header.writeInt32LE(1, 4);
  ints.forEach((v, i) => header.writeInt32LE(v, 8 + 4 * i));
  header.writeUInt8(shared ? 1 : 0, 36);
  return Buffer.concat([header, data]);
}

export function writeTinyCheckpoint(file: string, d: TinyDims = TINY, version: 0 | 1 = 0, shared = true): void {
  writeFileSync(file, tinyCheckpointBytes(d, version, shared));
}

/** tokenizer.bin bytes for the given pieces and scores, as llama2.c's tokenizer.py writes them. */
export function tokenizerBytes(pieces: string[], scores: number[]): Buffer {
  const encoded = pieces.map((p) => Buffer.from(p, 'utf8'));
  const parts: Buffer[] = [];
  const head = Buffer.alloc(4);
  head.writeInt32LE(Math.max(...encoded.map((b) => b.length)), 0);
  parts.push(head);
  encoded.forEach((b, i) => {
    const entry = Buffer.alloc(8);
    entry.writeFloatLE(scores[i], 0);
    entry.writeInt32LE(b.length, 4);
    parts.push(entry, b);
  });
  return Buffer.concat(parts);
}

/**
 * A SentencePiece-shaped vocabulary: <unk>, BOS, EOS, 256 byte pieces, then `extra` pieces
 * scored 0, -1, -2, ... (earlier pieces win merges, as SentencePiece BPE scores them).
 */
export function tinyVocab(extra: string[]): { pieces: string[]; scores: number[] } {
  const pieces = ['<unk>', '\n<s>\n', '\n</s>\n'];
  for (let b = 0; b < 256; b++) pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  const scores = pieces.map(() => 0);
  extra.forEach((m, i) => {
    pieces.push(m);
    scores.push(-i);
  });
  return { pieces, scores };
}

/** 13 pieces after the 259 fixed ones (ids 259..271): 272 tokens, the vocab_size of TINY. */
export const TINY_PIECES = ['bc', ' ', 'a', 'b', 'c', 'ab', ' a', 'abc', ' ab', 'é', 'ca', ' c', 'aa'];

export function writeTinyTokenizer(file: string, extra: string[] = TINY_PIECES): void {
  const { pieces, scores } = tinyVocab(extra);
  writeFileSync(file, tokenizerBytes(pieces, scores));
}

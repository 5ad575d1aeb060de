// A small Llama-shaped model made from nothing: a byte-pair vocabulary learnt from the
// demo corpus and randomly initialised weights, written as a llama2.c checkpoint plus
// tokenizer.bin, the same format as the real model the tests use. It lets the README's
// commands run on any fresh machine without downloading a model.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../engine/rng';

export interface TinyModelSpec {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  seqLen: number;
  merges: number;
  seed: number;
}

export const TINY_MODEL: TinyModelSpec = { dim: 64, hiddenDim: 176, nLayers: 4, nHeads: 4, nKvHeads: 2, seqLen: 128, merges: 160, seed: 1 };

/** Byte-pair merges learnt greedily from `texts`: vocabulary pieces in merge order. */
export function learnMerges(texts: string[], count: number): string[] {
  // Words with SentencePiece's space marker, as pieces of one character each.
  const words = new Map<string, number>();
  for (const t of texts) for (const w of t.split(' ')) words.set(' ' + w, (words.get(' ' + w) ?? 0) + 1);
  let split = [...words.entries()].map(([w, n]) => ({ pieces: [...w], n }));
  const merges: string[] = [];
  for (let k = 0; k < count; k++) {
    const pairs = new Map<string, number>();
    for (const { pieces, n } of split) {
      for (let i = 0; i + 1 < pieces.length; i++) {
        const key = pieces[i] + '\u0000' + pieces[i + 1];
        pairs.set(key, (pairs.get(key) ?? 0) + n);
      }
    }
    let best = '', bestN = 1;
    for (const [p, n] of pairs) if (n > bestN || (n === bestN && best !== '' && p < best)) { best = p; bestN = n; }
    if (!best) break;
    const [a, b] = best.split('\u0000');
    merges.push(a + b);
    split = split.map(({ pieces, n }) => {
      const out: string[] = [];
      for (let i = 0; i < pieces.length; i++) {
        if (i + 1 < pieces.length && pieces[i] === a && pieces[i + 1] === b) { out.push(a + b); i++; } else out.push(pieces[i]);
      }
      return { pieces: out, n };
    });
  }
  return merges;
}

/**
 * llama2.c tokenizer.bin: ids 0-2 <unk> <s> </s>, 3-258 byte tokens <0x00>..<0xFF>, then
 * single characters of the corpus and the merges, scored so earlier merges win.
 */
export function tokenizerBin(texts: string[], mergeCount: number): { bytes: Buffer; vocabSize: number } {
  const pieces: { s: string; score: number }[] = [
    { s: '<unk>', score: 0 }, { s: '\n<s>\n', score: 0 }, { s: '\n</s>\n', score: 0 },
  ];
  for (let b = 0; b < 256; b++) pieces.push({ s: `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, score: 0 });
  const chars = [...new Set(texts.join('').replace(/ /g, '').split(''))].sort();
  for (const c of [' ', ...chars]) pieces.push({ s: c, score: -1e6 });
  learnMerges(texts, mergeCount).forEach((m, i) => pieces.push({ s: m, score: -i }));
  const bufs: Buffer[] = [];
  const maxLen = Math.max(...pieces.map((p) => Buffer.byteLength(p.s)));
  const head = Buffer.alloc(4);
  head.writeInt32LE(maxLen);
  bufs.push(head);
  for (const p of pieces) {
    const s = Buffer.from(p.s, 'utf8');
    const h = Buffer.alloc(8);
    h.writeFloatLE(p.score, 0);
    h.writeInt32LE(s.length, 4);
    bufs.push(h, s);
  }
  return { bytes: Buffer.concat(bufs), vocabSize: pieces.length };
}

/**
 * A legacy llama2.c checkpoint: N(0, 0.02^2) projections, unit norms, and a tied
 * embedding/classifier of std 0.15. The head stays frozen under LoRA and sees unit-RMS
 * features, so a std-0.02 head could never make a confident prediction.
 */
export function checkpointBin(spec: TinyModelSpec, vocabSize: number): Buffer {
  const rng = new Rng(spec.seed);
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, seqLen } = spec;
  const kvDim = (dim / nHeads) * nKvHeads;
  const header = Buffer.alloc(28);
  [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen].forEach((v, i) => header.writeInt32LE(v, 4 * i));
  const sizes: [number, 'normal' | 'one' | 'embed'][] = [
    [vocabSize * dim, 'embed'], [nLayers * dim, 'one'], [nLayers * dim * dim, 'normal'], [nLayers * kvDim * dim, 'normal'],
    [nLayers * kvDim * dim, 'normal'], [nLayers * dim * dim, 'normal'], [nLayers * dim, 'one'],
    [nLayers * hiddenDim * dim, 'normal'], [nLayers * dim * hiddenDim, 'normal'], [nLayers * hiddenDim * dim, 'normal'],
    [dim, 'one'], [seqLen * (dim / nHeads / 2) * 2, 'one'],
  ];
  const total = sizes.reduce((n, [s]) => n + s, 0);
  const data = new Float32Array(total);
  let o = 0;
  for (const [s, kind] of sizes) {
    for (let i = 0; i < s; i++) data[o + i] = kind === 'one' ? 1 : (kind === 'embed' ? 0.15 : 0.02) * rng.normal();
    o += s;
  }
  return Buffer.concat([header, Buffer.from(data.buffer)]);
}

/** Writes tiny.bin and tok.bin into `dir` (each via a temporary file). Returns the folder. */
export function writeTinyModel(dir: string, texts: string[], spec: TinyModelSpec = TINY_MODEL): string {
  mkdirSync(dir, { recursive: true });
  const tok = tokenizerBin(texts, spec.merges);
  const write = (name: string, b: Buffer) => {
    writeFileSync(join(dir, `${name}.tmp`), b);
    renameSync(join(dir, `${name}.tmp`), join(dir, name));
  };
  write('tok.bin', tok.bytes);
  write('tiny.bin', checkpointBin(spec, tok.vocabSize));
  return dir;
}

// The llama2.c tokenizer (karpathy/llama2.c `tokenizer.py` export, `run.c` encode/decode).
//
// File: int32 max_token_length, then per token: float32 score, int32 byte length, the UTF-8
// bytes of its piece. The count is not stored (run.c takes it from the checkpoint), so it is
// whatever the file holds. Pieces use " " where SentencePiece uses "▁"; BOS/EOS are stored
// as "\n<s>\n"/"\n</s>\n"; byte-fallback pieces are "<0x00>".."<0xFF>".
//
// Encoding is run.c's: BOS, a dummy-prefix " " piece for non-empty text, one piece per UTF-8
// character (its bytes' byte pieces when the character is not in the vocabulary), then
// repeatedly merge the adjacent pair whose concatenation is the highest-scoring piece
// (leftmost on ties). run.c rescans all pairs after every merge (quadratic); here a heap of
// candidate pairs with lazy invalidation picks the same pair in the same order.
import { readFileSync } from 'node:fs';
import { ModelFormatError } from '../formats/types';
import type { Tokenizer } from './types';

const UNK_ID = 0;
const BOS_ID = 1;
const EOS_ID = 2;
/** run.c starts its best-score search here: pairs scoring at or below it never merge. */
const MIN_MERGE_SCORE = -1e10;
const BYTE_PIECE = /^<0x([0-9A-F]{2})>$/;

export class Llama2cTokenizer implements Tokenizer {
  readonly bosId = BOS_ID;
  readonly eosId = EOS_ID;
  readonly unkId = UNK_ID;
  readonly eosIds: readonly number[] = [EOS_ID];
  readonly addsBos = true;
  /** SentencePiece's spellings, which chat templates written for Llama 2 use. */
  readonly bosToken = '<s>';
  readonly eosToken = '</s>';
  readonly splitsSpecialTokens = false;
  readonly chatTemplate = undefined;
  /** Piece text per id, as stored (" " for SentencePiece's "▁"). */
  readonly pieces: readonly string[];
  readonly scores: Float32Array;
  /** For byte-fallback pieces, the byte they stand for; -1 for every other piece. */
  readonly byteOf: Int16Array;
  /** Id of the byte-fallback piece for each byte value. */
  private readonly byteIds: Int32Array;
  /** Piece text -> id over ordinary pieces: what characters and merges may become. */
  private readonly pieceIds = new Map<string, number>();
  private readonly utf8 = new TextEncoder();

  constructor(pieces: string[], scores: Float32Array, readonly maxTokenLength: number, readonly file = '<memory>') {
    if (pieces.length <= EOS_ID) throw new ModelFormatError(file, `has ${pieces.length} tokens; a llama2.c vocabulary starts with <unk>, BOS and EOS`);
    this.pieces = pieces;
    this.scores = scores;
    this.byteOf = new Int16Array(pieces.length).fill(-1);
    this.byteIds = new Int32Array(256).fill(UNK_ID);
    pieces.forEach((piece, id) => {
      const byte = BYTE_PIECE.exec(piece);
      if (byte) {
        this.byteOf[id] = parseInt(byte[1], 16);
        this.byteIds[this.byteOf[id]] = id;
      } else if (!this.isSpecial(id) && !this.pieceIds.has(piece)) {
        this.pieceIds.set(piece, id);
      }
    });
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  /** <unk>, BOS and EOS: SentencePiece's control pieces, never produced from text. */
  isSpecial(id: number): boolean {
    return id === UNK_ID || id === BOS_ID || id === EOS_ID;
  }

  /** Id of an ordinary piece (not a byte or control piece), if the vocabulary has it. */
  pieceId(piece: string): number | undefined {
    return this.pieceIds.get(piece);
  }

  static fromFile(file: string): Llama2cTokenizer {
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      throw new ModelFormatError(file, `cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    return Llama2cTokenizer.parse(bytes, file);
  }

  static parse(bytes: Uint8Array, file: string): Llama2cTokenizer {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.byteLength < 4) throw new ModelFormatError(file, 'is too short for a llama2.c tokenizer (no max_token_length)');
    const maxTokenLength = view.getInt32(0, true);
    if (maxTokenLength <= 0) throw new ModelFormatError(file, `max_token_length ${maxTokenLength} is not positive: not a llama2.c tokenizer`);
    const decoder = new TextDecoder('utf-8', { fatal: true });
    const pieces: string[] = [];
    const scores: number[] = [];
    let at = 4;
    while (at < bytes.byteLength) {
      const id = pieces.length;
      if (at + 8 > bytes.byteLength) throw new ModelFormatError(file, `truncated in token ${id} (score and length need 8 bytes at byte ${at})`);
      const score = view.getFloat32(at, true);
      const length = view.getInt32(at + 4, true);
      if (length < 0 || length > maxTokenLength || at + 8 + length > bytes.byteLength) {
        throw new ModelFormatError(file, `token ${id} at byte ${at} has length ${length}, outside 0..${Math.min(maxTokenLength, bytes.byteLength - at - 8)}: truncated or not a llama2.c tokenizer`);
      }
      try {
        pieces.push(decoder.decode(bytes.subarray(at + 8, at + 8 + length)));
      } catch {
        throw new ModelFormatError(file, `token ${id} at byte ${at} is not valid UTF-8: not a llama2.c tokenizer`);
      }
      scores.push(score);
      at += 8 + length;
    }
    return new Llama2cTokenizer(pieces, Float32Array.from(scores), maxTokenLength, file);
  }

  encode(text: string, opts: { bos?: boolean } = {}): number[] {
    const ids = opts.bos === false ? [] : [BOS_ID];
    if (text === '') return ids;
    return ids.concat(this.mergePieces(this.characterPieces(text)));
  }

  /** The dummy prefix, then one piece per character, byte pieces where it has none. */
  private characterPieces(text: string): number[] {
    const out: number[] = [];
    for (const ch of ' ' + text) {
      const id = this.pieceIds.get(ch);
      if (id !== undefined) out.push(id);
      else for (const b of this.utf8.encode(ch)) out.push(this.byteIds[b]);
    }
    return out;
  }

  /** Highest-scoring merges first, leftmost first among equal scores: run.c's order. */
  private mergePieces(ids: number[]): number[] {
    const n = ids.length;
    // A doubly linked list over positions; a merge keeps the left position and kills the right.
    const id = Int32Array.from(ids);
    const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
    const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    const version = new Int32Array(n); // bumped when a position changes or dies
    const heap = new CandidateHeap();
    const consider = (left: number) => {
      const right = next[left];
      if (left < 0 || right < 0) return;
      const merged = this.pieceIds.get(this.pieces[id[left]] + this.pieces[id[right]]);
      if (merged === undefined || !(this.scores[merged] > MIN_MERGE_SCORE)) return;
      heap.push({ score: this.scores[merged], left, merged, leftVersion: version[left], rightVersion: version[right], right });
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    for (let c = heap.pop(); c; c = heap.pop()) {
      if (version[c.left] !== c.leftVersion || version[c.right] !== c.rightVersion || next[c.left] !== c.right) continue;
      id[c.left] = c.merged;
      version[c.left]++;
      version[c.right] = -1; // dead: no candidate records -1
      next[c.left] = next[c.right];
      if (next[c.right] >= 0) prev[next[c.right]] = c.left;
      consider(prev[c.left]);
      consider(c.left);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0 && i < n; i = next[i]) out.push(id[i]);
    return out;
  }

  /**
   * The text of `ids`. Control pieces (<unk>, BOS, EOS) are dropped, byte pieces become their
   * bytes, and the dummy-prefix space is removed where run.c removes it (after BOS) and at
   * the start of the text, as SentencePiece and the Hugging Face Llama decoder do.
   */
  decode(ids: number[]): string {
    const bytes: number[] = [];
    let stripSpace = true;
    for (const tokenId of ids) {
      if (!Number.isInteger(tokenId) || tokenId < 0 || tokenId >= this.pieces.length) {
        throw new RangeError(`token id ${tokenId} is outside the vocabulary (0..${this.pieces.length - 1})`);
      }
      if (this.isSpecial(tokenId)) {
        if (tokenId === BOS_ID) stripSpace = true;
        continue;
      }
      const byte = this.byteOf[tokenId];
      if (byte >= 0) bytes.push(byte);
      else {
        let piece = this.pieces[tokenId];
        if (stripSpace && piece.startsWith(' ')) piece = piece.slice(1);
        for (const b of this.utf8.encode(piece)) bytes.push(b);
      }
      stripSpace = false;
    }
    return new TextDecoder().decode(Uint8Array.from(bytes));
  }
}

interface Candidate {
  score: number;
  left: number;
  right: number;
  merged: number;
  leftVersion: number;
  rightVersion: number;
}

/** Max-heap on score, then min on position (leftmost first). */
class CandidateHeap {
  private items: Candidate[] = [];

  private before(a: Candidate, b: Candidate): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }

  push(c: Candidate): void {
    const items = this.items;
    items.push(c);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(items[i], items[parent])) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }

  pop(): Candidate | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < items.length && this.before(items[l], items[best])) best = l;
        if (r < items.length && this.before(items[r], items[best])) best = r;
        if (best === i) break;
        [items[i], items[best]] = [items[best], items[i]];
        i = best;
      }
    }
    return top;
  }
}

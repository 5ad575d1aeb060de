// A llama2.c tokenizer.bin vocabulary as a Hugging Face `tokenizer.json` + `tokenizer_config.json`,
// built the way transformers' LlamaConverter builds one from a SentencePiece BPE model:
// a BPE model with byte fallback whose merges are every (left, right) split of each piece,
// ranked by the merged piece's score (highest first, as SentencePieceExtractor orders them).
// BPE then merges the lowest-rank adjacent pair first, which is the highest-scoring merge
// that llama2.c's encoder picks. Normalizer: prepend "▁", spaces to "▁". Decoder: "▁" back
// to spaces, byte pieces to bytes, fuse, strip one leading space.
import type { Llama2cTokenizer } from './llama2c';

const SPACE = '▁'; // U+2581, SentencePiece's whitespace symbol
const CONTROL_PIECES: Record<number, string> = { 0: '<unk>', 1: '<s>', 2: '</s>' };

export interface HuggingFaceTokenizerFiles {
  /** Contents of tokenizer.json. */
  tokenizer: Record<string, unknown>;
  /** Contents of tokenizer_config.json. */
  tokenizerConfig: Record<string, unknown>;
}

/** The piece of `id` in SentencePiece spelling ("▁" for spaces, <s> for BOS). */
function sentencePiece(tok: Llama2cTokenizer, id: number): string {
  return CONTROL_PIECES[id] ?? tok.pieces[id].replaceAll(' ', SPACE);
}

/** Every split of every ordinary piece into two ordinary pieces, in BPE rank order. */
export function mergesOf(tok: Llama2cTokenizer): [string, string][] {
  const ranked: { score: number; id: number; leftId: number; rightId: number }[] = [];
  for (let id = 0; id < tok.vocabSize; id++) {
    if (tok.pieceId(tok.pieces[id]) !== id) continue; // control, byte and duplicate pieces are never merge results
    const chars = Array.from(tok.pieces[id]);
    for (let k = 1; k < chars.length; k++) {
      const leftId = tok.pieceId(chars.slice(0, k).join(''));
      const rightId = tok.pieceId(chars.slice(k).join(''));
      if (leftId !== undefined && rightId !== undefined) ranked.push({ score: tok.scores[id], id, leftId, rightId });
    }
  }
  ranked.sort((a, b) => b.score - a.score || a.id - b.id || a.leftId - b.leftId || a.rightId - b.rightId);
  return ranked.map((m) => [sentencePiece(tok, m.leftId), sentencePiece(tok, m.rightId)]);
}

export function llama2cToHuggingFace(tok: Llama2cTokenizer, opts: { modelMaxLength?: number } = {}): HuggingFaceTokenizerFiles {
  // Object.fromEntries defines own properties, so a piece like "__proto__" stays a plain key.
  const vocab = Object.fromEntries(Array.from({ length: tok.vocabSize }, (_, id) => [sentencePiece(tok, id), id]));
  const addedTokens = Object.entries(CONTROL_PIECES).map(([id, content]) => ({
    id: Number(id), content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  }));
  const bos = CONTROL_PIECES[tok.bosId];
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: SPACE },
        { type: 'Replace', pattern: { String: ' ' }, content: SPACE },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { [bos]: { id: bos, ids: [tok.bosId], tokens: [bos] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: CONTROL_PIECES[tok.unkId],
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: mergesOf(tok).map(([l, r]) => `${l} ${r}`),
    },
  };
  const tokenizerConfig: Record<string, unknown> = {
    tokenizer_class: 'LlamaTokenizerFast',
    bos_token: bos,
    eos_token: CONTROL_PIECES[tok.eosId],
    unk_token: CONTROL_PIECES[tok.unkId],
    pad_token: null,
    add_bos_token: true,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    legacy: true,
  };
  if (opts.modelMaxLength !== undefined) tokenizerConfig.model_max_length = opts.modelMaxLength;
  return { tokenizer, tokenizerConfig };
}

// A Hugging Face fast tokenizer (`tokenizer.json` + `tokenizer_config.json`) run by
// @huggingface/tokenizers (the pure-JS port used by transformers.js).
//
// BOS is added here rather than by the file's post-processor, so `encode(text, {bos})` means
// the same for every model: BOS first where the model uses one (its post-processor or
// tokenizer_config.json's add_bos_token says so; Qwen and SmolLM do not); EOS is never added. Decoding drops special tokens and never
// applies the legacy "clean up tokenization spaces" rewrite, so decode(encode(x)) gives x back.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { ModelFormatError } from '../formats/types';
import type { Tokenizer } from './types';

/** The files that make up a Hugging Face tokenizer (copied together when a model is re-saved). */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja', 'tokenizer.model'] as const;

type Json = Record<string, unknown>;

function readJson(file: string): Json {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ModelFormatError(file, `cannot read as JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ModelFormatError(file, 'is not a JSON object');
  return value as Json;
}

/**
 * No published vocabulary comes near this (Gemma 3's 262,144 ids are the largest we know).
 * The tokenizer library keeps its vocabulary as an array indexed by id, so one id of 2^31
 * in a damaged file makes an array of that length, and listing the vocabulary then loops
 * two billion times: ids are checked against this bound before the library sees the file.
 */
export const MAX_TOKEN_ID = 2 ** 24 - 1;

/** Every token id tokenizer.json declares (its model's vocabulary and its added tokens) is a whole number in 0..MAX_TOKEN_ID. */
function checkTokenIds(json: Json, file: string): void {
  const check = (id: unknown, where: string): void => {
    if (!(typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= MAX_TOKEN_ID)) {
      throw new ModelFormatError(file, `${where} has id ${JSON.stringify(id)}: a token id is a whole number from 0 to ${MAX_TOKEN_ID}`);
    }
  };
  const added = json.added_tokens;
  if (added !== undefined && added !== null) {
    if (!Array.isArray(added)) throw new ModelFormatError(file, 'added_tokens is not a list');
    added.forEach((t: unknown, k) => {
      if (typeof t !== 'object' || t === null) throw new ModelFormatError(file, `added_tokens[${k}] is not an object`);
      check((t as Json).id, `added_tokens[${k}] (${JSON.stringify((t as Json).content)?.slice(0, 40)})`);
    });
  }
  const vocab = (json.model as Json | undefined)?.vocab;
  // BPE, WordPiece and WordLevel map token -> id; Unigram lists [token, score] (ids are positions).
  if (vocab && typeof vocab === 'object' && !Array.isArray(vocab)) {
    for (const [token, id] of Object.entries(vocab as Json)) check(id, `model.vocab entry ${JSON.stringify(token).slice(0, 40)}`);
  } else if (Array.isArray(vocab)) {
    if (vocab.length > MAX_TOKEN_ID + 1) throw new ModelFormatError(file, `model.vocab lists ${vocab.length} tokens, more than ${MAX_TOKEN_ID + 1}`);
  } else if (vocab !== undefined) {
    throw new ModelFormatError(file, `model.vocab is ${JSON.stringify(vocab)?.slice(0, 40)}: a map of token to id, or a list of [token, score]`);
  }
}

/** tokenizer_config.json writes special tokens as a string or as {content: string}. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** config.json's id, or the first of a list of ids (Llama 3 lists several EOS ids). */
function configId(v: unknown): number | undefined {
  const id = Array.isArray(v) ? v[0] : v;
  return isId(id) ? id : undefined;
}

/** An id or a list of ids (config.json / generation_config.json eos_token_id), as a list. */
function idList(v: unknown): number[] {
  return (Array.isArray(v) ? v : [v]).filter(isId);
}

/** `chat_template` as a string, a list of {name, template} (use "default"), or chat_template.jinja. */
function chatTemplateOf(config: Json, dir: string): string | undefined {
  const t = config.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t.find((x) => x?.name === 'default') ?? t[0];
    if (typeof named?.template === 'string') return named.template;
  }
  const jinja = join(dir, 'chat_template.jinja');
  return existsSync(jinja) ? readFileSync(jinja, 'utf8') : undefined;
}

/**
 * What fromFolder needs from the library's tokenizer: its last id, the EOS and BOS ids the
 * files name, and whether its post-processor puts a token before a text. Each of these runs
 * parts of the file (encode, the vocabulary list) that fail only when used.
 */
function inspect(tokenizer: HfTokenizer, config: Json, modelConfig: Json) {
  const idOf = (key: string): number | undefined => {
    const text = tokenText(config[key]);
    const id = text === undefined ? undefined : tokenizer.token_to_id(text);
    return isId(id) ? id : undefined;
  };
  const eosId = idOf('eos_token') ?? configId(modelConfig.eos_token_id);
  // What tokenizer.json's post-processor puts before a text is what the model was fed.
  const plain = tokenizer.encode('a', { add_special_tokens: false }).ids;
  const framed = tokenizer.encode('a', { add_special_tokens: true }).ids;
  const first = framed.length > plain.length && framed[0] !== plain[0] ? framed[0] : undefined;
  const leading = isId(first) ? first : undefined;
  const namedBos = idOf('bos_token');
  // transformers' Llama/Gemma tokenizers rebuild the post-processor from add_bos_token.
  const addsBos = typeof config.add_bos_token === 'boolean' && namedBos !== undefined ? config.add_bos_token : leading !== undefined;
  let maxId = -1;
  for (const id of tokenizer.get_vocab(true).values()) maxId = Math.max(maxId, id);
  // A decoder that fails, or that a damaged file left out (the library then joins the raw
  // pieces with spaces), shows here rather than in a run's samples: every tokenizer we take
  // gives plain ASCII back as it was.
  const back = tokenizer.decode(tokenizer.encode(ROUND_TRIP, { add_special_tokens: false }).ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  if (back !== ROUND_TRIP) {
    throw new Error(`it does not decode what it encodes: ${JSON.stringify(ROUND_TRIP)} comes back as ${JSON.stringify(back.slice(0, 80))} (a damaged decoder, normalizer or vocabulary)`);
  }
  return { tokenizer, maxId, eosId, namedBos, leading, addsBos };
}

const ROUND_TRIP = 'Hello world, 42 ships.';

export class HuggingFaceTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly eosIds: readonly number[];
  readonly addsBos: boolean;
  readonly bosToken?: string;
  readonly eosToken?: string;
  readonly splitsSpecialTokens = true;
  readonly chatTemplate?: string;

  private constructor(
    /** The folder the tokenizer files came from (copied as they are when a model is re-saved). */
    readonly dir: string,
    private readonly tokenizer: HfTokenizer,
    ids: Pick<HuggingFaceTokenizer, 'vocabSize' | 'bosId' | 'eosId' | 'eosIds' | 'addsBos' | 'bosToken' | 'eosToken' | 'chatTemplate'>,
  ) {
    this.vocabSize = ids.vocabSize;
    this.bosId = ids.bosId;
    this.eosId = ids.eosId;
    this.eosIds = ids.eosIds;
    this.addsBos = ids.addsBos;
    this.bosToken = ids.bosToken;
    this.eosToken = ids.eosToken;
    this.chatTemplate = ids.chatTemplate;
  }

  /**
   * Loads `dir/tokenizer.json` (and `tokenizer_config.json` when present). BOS/EOS come from
   * tokenizer_config.json's bos_token/eos_token, else from `modelConfig` (config.json's
   * bos_token_id/eos_token_id). A model without a BOS token (Qwen2) uses its EOS token.
   * The EOS list also takes every id of config.json's and generation_config.json's
   * eos_token_id (a number or a list).
   */
  static fromFolder(dir: string, modelConfig: Json = {}): HuggingFaceTokenizer {
    const tokenizerFile = join(dir, 'tokenizer.json');
    if (!existsSync(tokenizerFile)) {
      throw new ModelFormatError(tokenizerFile, 'not found: a Hugging Face model folder needs tokenizer.json (the fast-tokenizer file; tokenizer.model alone is not supported)');
    }
    const json = readJson(tokenizerFile);
    checkTokenIds(json, tokenizerFile);
    const configFile = join(dir, 'tokenizer_config.json');
    const config = existsSync(configFile) ? readJson(configFile) : {};
    // The library checks little of the file up front: a damaged part fails at first use
    // (an encode, a vocabulary listing), so everything it does here is inside one guard.
    const loaded = (() => {
      try {
        return inspect(new HfTokenizer(json, config), config, modelConfig);
      } catch (err) {
        if (err instanceof ModelFormatError) throw err;
        throw new ModelFormatError(tokenizerFile, `cannot be loaded (${(err as Error).message})`);
      }
    })();
    if (loaded.eosId === undefined) {
      throw new ModelFormatError(configFile, 'names no eos_token in the vocabulary, and config.json has no eos_token_id');
    }
    const { tokenizer, maxId, eosId, namedBos, leading, addsBos } = loaded;
    const bosId = namedBos ?? configId(modelConfig.bos_token_id) ?? leading ?? eosId;
    for (const [name, id] of [['BOS', bosId], ['EOS', eosId]] as const) {
      if (id > maxId) throw new ModelFormatError(tokenizerFile, `the ${name} token id ${id} is past the vocabulary's last id ${maxId}`);
    }
    const generationFile = join(dir, 'generation_config.json');
    const generation = existsSync(generationFile) ? readJson(generationFile) : {};
    // config.json's order first: it is what a re-saved config.json writes back.
    const eosIds = [...new Set([...idList(modelConfig.eos_token_id), ...idList(generation.eos_token_id), eosId])]
      .filter((id) => id <= maxId);
    return new HuggingFaceTokenizer(dir, tokenizer, {
      vocabSize: maxId + 1, bosId, eosId, eosIds, addsBos,
      bosToken: namedBos !== undefined ? tokenText(config.bos_token) : addsBos ? tokenizer.id_to_token(bosId) : undefined,
      eosToken: tokenText(config.eos_token) ?? tokenizer.id_to_token(eosId) ?? undefined,
      chatTemplate: chatTemplateOf(config, dir),
    });
  }

  encode(text: string, opts: { bos?: boolean } = {}): number[] {
    const ids = this.guarded('encode a text', () => this.tokenizer.encode(text, { add_special_tokens: false }).ids);
    for (const id of ids) {
      if (!(Number.isInteger(id) && id >= 0 && id < this.vocabSize)) {
        throw new ModelFormatError(join(this.dir, 'tokenizer.json'), `encoding a text gave the id ${JSON.stringify(id)}, outside the vocabulary (0..${this.vocabSize - 1})`);
      }
    }
    return opts.bos === false || !this.addsBos ? ids : [this.bosId, ...ids];
  }

  decode(ids: number[]): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
      }
    }
    // BOS/EOS are dropped even where the file does not mark them special.
    const kept = ids.filter((id) => id !== this.bosId && id !== this.eosId);
    if (kept.length === 0) return ''; // the library refuses an empty list
    return this.guarded('decode ids', () => this.tokenizer.decode(kept, { skip_special_tokens: true, clean_up_tokenization_spaces: false }));
  }

  /** A library failure on some input (a damaged part of the file that the load did not reach) names the file. */
  private guarded<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw new ModelFormatError(join(this.dir, 'tokenizer.json'), `cannot ${what} (${(err as Error).message})`);
    }
  }
}

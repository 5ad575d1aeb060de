// Data sets for fine-tuning: a JSONL file (see formats.ts) -> tokenized examples with
// loss masks (tokenize.ts), truncated to the context, split into train and validation
// deterministically from the seed. Problems are refused here, before training starts.
import { readFileSync } from 'node:fs';
import { Rng } from '../rng';
import type { Tokenizer } from '../tokenizer/types';
import { ChatRenderer, type SpecialTokens } from './chatTemplate';
import { parseJsonl } from './formats';
import { boundRecord } from './textBudget';
import { tokenizeRecord } from './tokenize';
import { DataError, type DataFormat, type Example } from './types';

export interface DataOptions {
  format: DataFormat;
  /**
   * Positions the model sees per example (the batch's T). An example keeps at most
   * maxSeqLen + 1 tokens, since its last token is only ever a target.
   */
  maxSeqLen: number;
  seed: number;
  /** Train on prompt tokens too (alpaca prompt, chat system/user turns). Default false. */
  trainOnPrompt?: boolean;
  /** Fraction of the train file held out for evaluation, in [0, 1). Default 0. */
  validationSplit?: number;
  /** A separate validation file, instead of validationSplit. */
  validationFile?: string;
  /** How the chat template spells BOS and EOS. Default: the tokenizer's own (tokenizer_config.json). */
  specialTokens?: SpecialTokens;
}

/** What happened to one file's lines. */
export interface DataStats {
  file: string;
  /** Non-blank lines, one record each. */
  records: number;
  /** Examples kept. */
  examples: number;
  /** Kept examples that were cut to maxSeqLen + 1 tokens. */
  truncated: number;
  /** Examples with no trained token left after truncation (or none at all). */
  dropped: number;
  /** Tokens of the longest example before truncation. */
  longest: number;
  /** Trained target tokens over the kept examples. */
  targetTokens: number;
}

export interface DataSet {
  train: Example[];
  validation: Example[];
  trainStats: DataStats;
  /** Present when validation came from its own file. */
  validationStats?: DataStats;
}

/** Reads, tokenizes and splits the train file (and the validation file, if any). */
export function loadDataSet(trainFile: string, tokenizer: Tokenizer, opts: DataOptions): DataSet {
  const split = opts.validationSplit ?? 0;
  if (!(split >= 0 && split < 1)) throw new Error(`validationSplit must be in [0, 1), got ${split}`);
  if (opts.validationFile && split > 0) {
    throw new Error('give either a validation file or a validation split, not both');
  }
  const trainBuilt = buildExamples(readData(trainFile), trainFile, tokenizer, opts);
  if (opts.validationFile) {
    const valBuilt = buildExamples(readData(opts.validationFile), opts.validationFile, tokenizer, opts);
    return {
      train: trainBuilt.examples, validation: valBuilt.examples,
      trainStats: trainBuilt.stats, validationStats: valBuilt.stats,
    };
  }
  const { train, validation } = splitValidation(trainBuilt.examples, split, opts.seed, trainFile);
  return { train, validation, trainStats: trainBuilt.stats };
}

/** Tokenizes the text of one JSONL file; `file` names it in errors. Refuses an unusable set. */
export function buildExamples(
  text: string, file: string, tokenizer: Tokenizer, opts: DataOptions,
): { examples: Example[]; stats: DataStats } {
  if (!(Number.isInteger(opts.maxSeqLen) && opts.maxSeqLen >= 1)) {
    throw new Error(`maxSeqLen must be a positive integer, got ${opts.maxSeqLen}`);
  }
  const records = parseJsonl(text, file, opts.format);
  if (records.length === 0) throw new DataError(file, undefined, 'the data set is empty (no JSON lines)');
  let chat: ChatRenderer | undefined;
  if (opts.format === 'chat') {
    try {
      chat = new ChatRenderer(tokenizer, opts.specialTokens);
    } catch (e) {
      throw new DataError(file, undefined, (e as Error).message);
    }
  }
  const maxTokens = opts.maxSeqLen + 1;
  const stats: DataStats = { file, records: records.length, examples: 0, truncated: 0, dropped: 0, longest: 0, targetTokens: 0 };
  const examples: Example[] = [];
  let shortest = Infinity;
  for (const record of records) {
    let example: Example;
    try {
      // Text that could only land past the cut is not tokenized (see textBudget.ts).
      example = tokenizeRecord(boundRecord(record, maxTokens).record, tokenizer, { trainOnPrompt: opts.trainOnPrompt ?? false, chat });
    } catch (e) {
      throw new DataError(file, record.line, (e as Error).message);
    }
    const n = example.ids.length;
    stats.longest = Math.max(stats.longest, n);
    shortest = Math.min(shortest, n);
    const cut = n > maxTokens;
    if (cut) example = { ids: example.ids.slice(0, maxTokens), mask: example.mask.slice(0, maxTokens) };
    const targets = countTargets(example.mask);
    if (targets === 0) {
      stats.dropped++;
      continue;
    }
    if (cut) stats.truncated++;
    stats.targetTokens += targets;
    examples.push(example);
  }
  // A set in which nothing fits would train only on cut-off heads of examples (never
  // on their endings or EOS): almost certainly a max_seq_len set too low.
  if (shortest > maxTokens) {
    throw new DataError(file, undefined,
      `every example is longer than max_seq_len ${opts.maxSeqLen} (the shortest has ${shortest} tokens, ` +
      `so ${shortest - 1} positions): raise max_seq_len or shorten the examples`);
  }
  if (examples.length === 0) throw new DataError(file, undefined, 'no example has a token to train on');
  stats.examples = examples.length;
  return { examples, stats };
}

/**
 * Holds out ceil(split * n) examples chosen by a seeded shuffle (the count rule of
 * datasets' train_test_split); both parts keep file order, as the batcher shuffles.
 */
export function splitValidation(
  examples: Example[], split: number, seed: number, file = 'data',
): { train: Example[]; validation: Example[] } {
  if (split <= 0) return { train: examples, validation: [] };
  const n = examples.length;
  const held = Math.ceil(split * n);
  if (held >= n) {
    throw new DataError(file, undefined,
      `validation_split ${split} of ${n} example${n === 1 ? '' : 's'} leaves none to train on`);
  }
  const order = new Rng(seed).shuffle([...Array(n).keys()]);
  const isValidation = new Uint8Array(n);
  for (const i of order.slice(0, held)) isValidation[i] = 1;
  return {
    train: examples.filter((_, i) => !isValidation[i]),
    validation: examples.filter((_, i) => isValidation[i]),
  };
}

function readData(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new DataError(file, undefined, `cannot read the data file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

function countTargets(mask: Uint8Array): number {
  let n = 0;
  for (let i = 1; i < mask.length; i++) n += mask[i];
  return n;
}

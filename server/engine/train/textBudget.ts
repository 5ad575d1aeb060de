// A bound on how much of a record's text is tokenized. An example keeps at most
// max_seq_len + 1 tokens, and no real token spans more than a few dozen characters, so the
// text past (max_seq_len + 1) * MAX_CHARS_PER_TOKEN characters can never reach the kept
// tokens; tokenizing it anyway lets one 40 MiB line take minutes and gigabytes before the
// cut applies. The text fields share that budget, in the order they are rendered.
import type { DataRecord } from './formats';

/** Generous: SentencePiece and byte-level BPE vocabularies have pieces of at most ~16-128 characters, and long ones are rare runs. */
export const MAX_CHARS_PER_TOKEN = 32;

/**
 * The record with its text fields, in the order they are rendered, cut to one shared budget
 * for `maxTokens` tokens: once the fields so far hold `budget` characters they hold at least
 * maxTokens tokens, so every later character would fall past the cut. `cut` says whether any was.
 */
export function boundRecord(record: DataRecord, maxTokens: number): { record: DataRecord; cut: boolean } {
  let left = maxTokens * MAX_CHARS_PER_TOKEN;
  let cut = false;
  const clip = (s: string): string => {
    if (s.length <= left) {
      left -= s.length;
      return s;
    }
    cut = true;
    // Not between the two halves of a surrogate pair.
    const end = left > 0 && /[\uD800-\uDBFF]/.test(s[left - 1]) ? left - 1 : left;
    left = 0;
    return s.slice(0, end);
  };
  switch (record.format) {
    case 'text':
      return { record: { ...record, text: clip(record.text) }, cut };
    case 'alpaca': {
      const system = record.system === undefined ? undefined : clip(record.system);
      const r = { ...record, instruction: clip(record.instruction), input: clip(record.input), output: clip(record.output) };
      if (system !== undefined) r.system = system;
      return { record: r, cut };
    }
    case 'chat':
      return { record: { ...record, messages: record.messages.map((m) => ({ ...m, content: clip(m.content) })) }, cut };
  }
}

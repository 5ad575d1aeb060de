// A bound on how much of a record's text is tokenized. An example keeps at most
// max_seq_len + 1 tokens, and no real token spans more than a few dozen characters, so the
// text past (max_seq_len + 1) * MAX_CHARS_PER_TOKEN characters can never reach the kept
// tokens; tokenizing it anyway lets one 40 MiB line take minutes and gigabytes before the
// cut applies. Each text field is shortened to that budget first.
import type { DataRecord } from './formats';

/** Generous: SentencePiece and byte-level BPE vocabularies have pieces of at most ~16-128 characters, and long ones are rare runs. */
export const MAX_CHARS_PER_TOKEN = 32;

/** The record with each text field cut to the budget for `maxTokens` tokens; `cut` says whether any was. */
export function boundRecord(record: DataRecord, maxTokens: number): { record: DataRecord; cut: boolean } {
  const budget = maxTokens * MAX_CHARS_PER_TOKEN;
  let cut = false;
  const clip = (s: string): string => {
    if (s.length <= budget) return s;
    cut = true;
    // Not between the two halves of a surrogate pair.
    const end = /[\uD800-\uDBFF]/.test(s[budget - 1]) ? budget - 1 : budget;
    return s.slice(0, end);
  };
  switch (record.format) {
    case 'text':
      return { record: { ...record, text: clip(record.text) }, cut };
    case 'alpaca': {
      const r = { ...record, instruction: clip(record.instruction), input: clip(record.input), output: clip(record.output) };
      if (record.system !== undefined) r.system = clip(record.system);
      return { record: r, cut };
    }
    case 'chat':
      return { record: { ...record, messages: record.messages.map((m) => ({ ...m, content: clip(m.content) })) }, cut };
  }
}

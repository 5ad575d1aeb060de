// A real, tiny character-level tokenizer for the data tests: one id per character
// (code point + 3), so token positions are character positions and masks can be
// written down by hand. Test data, not a stand-in for the project's tokenizers.
import type { Tokenizer } from '../../server/engine/tokenizer/types';

export const PAD = 0;
export const BOS = 1;
export const EOS = 2;

export class CharTokenizer implements Tokenizer {
  readonly vocabSize = 3 + 0x110000;
  readonly bosId = BOS;
  readonly eosId = EOS;
  readonly eosIds = [EOS];
  readonly addsBos = true;
  readonly bosToken = '<s>';
  readonly eosToken = '</s>';
  readonly splitsSpecialTokens = false;
  constructor(readonly chatTemplate?: string) {}

  encode(text: string, opts: { bos?: boolean } = {}): number[] {
    const ids = [...text].map((c) => c.codePointAt(0)! + 3);
    return opts.bos ?? true ? [BOS, ...ids] : ids;
  }

  decode(ids: number[]): string {
    return ids.filter((i) => i > EOS).map((i) => String.fromCodePoint(i - 3)).join('');
  }
}

/** The ids of `text`, character by character, without BOS. */
export function chars(text: string): number[] {
  return new CharTokenizer().encode(text, { bos: false });
}

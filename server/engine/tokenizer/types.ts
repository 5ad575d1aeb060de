// What the engine needs from a tokenizer, whatever file it came from
// (llama2.c tokenizer.bin or Hugging Face tokenizer.json).
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /** Token ids of `text`; a BOS id first when `bos` is true (the default). */
  encode(text: string, opts?: { bos?: boolean }): number[];
  /** The text of `ids`; special tokens (BOS/EOS) are dropped. */
  decode(ids: number[]): string;
  /** The Jinja chat template from tokenizer_config.json, if the model has one. */
  readonly chatTemplate?: string;
}

// What the engine needs from a tokenizer, whatever file it came from
// (llama2.c tokenizer.bin or Hugging Face tokenizer.json).
export interface Tokenizer {
  readonly vocabSize: number;
  /**
   * The BOS id. For a model without a BOS token (Qwen2/3) this is the id it starts
   * generation from when given nothing (config.json's bos_token_id, else EOS); whether a
   * sequence starts with it is `addsBos`.
   */
  readonly bosId: number;
  /** The EOS id training appends (tokenizer_config.json's eos_token). */
  readonly eosId: number;
  /**
   * Every id that ends a sequence, kept whole: eosId and the lists of config.json and
   * generation_config.json (Llama 3.x: 128001, 128008, 128009). Generation stops on any.
   */
  readonly eosIds: readonly number[];
  /** Whether a sequence starts with BOS, as the tokenizer's own post-processor does (not Qwen, SmolLM). */
  readonly addsBos: boolean;
  /** How chat templates spell BOS / EOS (tokenizer_config.json's bos_token / eos_token); undefined where there is none. */
  readonly bosToken?: string;
  readonly eosToken?: string;
  /**
   * Whether encode() turns the text of special tokens ("<|im_end|>", "<s>") into their ids, as
   * Hugging Face tokenizers do; llama2.c's spells them character by character.
   */
  readonly splitsSpecialTokens: boolean;
  /** Token ids of `text`; BOS first when `bos` is true (the default) and the model uses one (`addsBos`). */
  encode(text: string, opts?: { bos?: boolean }): number[];
  /** The text of `ids`; special tokens (BOS/EOS) are dropped. */
  decode(ids: number[]): string;
  /** The Jinja chat template from tokenizer_config.json, if the model has one. */
  readonly chatTemplate?: string;
}

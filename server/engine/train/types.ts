// Types shared by the data pipeline (formats -> examples -> batches).

export type DataFormat = 'text' | 'alpaca' | 'chat';
export const DATA_FORMATS: readonly DataFormat[] = ['text', 'alpaca', 'chat'];

/**
 * One tokenized training example. `mask[i]` is 1 when token i is trained as a
 * prediction target (predicted from tokens 0..i-1), 0 when it is only context: the
 * first token (BOS) and, unless trainOnPrompt, the prompt. Same length as `ids`.
 */
export interface Example {
  ids: Int32Array;
  mask: Uint8Array;
}

/**
 * A problem with the data, located as precisely as is known: `file:line: reason` for
 * one line, `file: reason` for the whole file.
 */
export class DataError extends Error {
  constructor(readonly file: string, readonly line: number | undefined, readonly reason: string) {
    super(line === undefined ? `${file}: ${reason}` : `${file}:${line}: ${reason}`);
    this.name = 'DataError';
  }
}

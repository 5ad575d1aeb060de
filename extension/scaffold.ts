// The text of a new `.qlora` file: every key of the schema with its default and its
// one-line description as a comment, so that the file documents itself. Derived from
// server/config/schema.ts, the same declaration the language server reads, and written
// by server/config/write.ts, the one .qlora writer.
import { SCHEMA } from '../server/config/schema';
import { formatDefault } from '../server/config/describe';
import { annotatedConfigText, yamlScalar } from '../server/config/write';

export interface ScaffoldChoices {
  /** model.base, as it should be written (relative to the .qlora file). */
  model: string;
  /** data.train, likewise. */
  data: string;
  format: 'text' | 'alpaca' | 'chat';
  /** output.dir, likewise. */
  outputDir: string;
  /** The model's context in tokens, when it could be read: max_seq_len is capped at it. */
  contextLength?: number;
}

/** What a commented-out max_steps offers: uncommenting it alone gives a valid file. */
export const SCAFFOLD_MAX_STEPS = 100;

/** The data format a JSONL line looks like: chat messages, an instruction, else plain text. */
export function guessFormat(firstLine: string | undefined): ScaffoldChoices['format'] {
  try {
    const o = JSON.parse(firstLine ?? '') as Record<string, unknown>;
    if (Array.isArray(o.messages)) return 'chat';
    if (typeof o.instruction === 'string') return 'alpaca';
  } catch {
    // not JSON: the language server will say so
  }
  return 'text';
}

export function scaffoldConfig(choices: ScaffoldChoices): string {
  const chosen: Record<string, string> = {
    'model.base': yamlScalar(choices.model),
    'data.train': yamlScalar(choices.data),
    'data.format': choices.format,
    'output.dir': yamlScalar(choices.outputDir),
  };
  const seqLen = SCHEMA.data.keys.max_seq_len.default;
  if (choices.contextLength && choices.contextLength < seqLen) chosen['data.max_seq_len'] = String(choices.contextLength);
  // epochs and max_steps may not both be set. epochs is written commented out (its default
  // applies), so that uncommenting max_steps, as epochs' comment invites, is all it takes.
  const commented: Record<string, string> = {
    'training.epochs': formatDefault(SCHEMA.training.keys.epochs) ?? '3',
    'training.max_steps': String(SCAFFOLD_MAX_STEPS),
  };
  return annotatedConfigText(chosen, commented, [
    'QLoRA fine-tune config. Hover a key for its documentation; the code lens above',
    'line 1 estimates what the run costs before it starts.',
  ]);
}

// The text of a new `.qlora` file: every key of the schema with its default and its
// one-line description as a comment, so that the file documents itself. Derived from
// server/config/schema.ts, the same declaration the language server reads.
import { SCHEMA, SECTION_NAMES, type KeySpec } from '../server/config/schema';
import { formatDefault } from '../server/config/describe';

export interface ScaffoldChoices {
  /** model.base, as it should be written (relative to the .qlora file). */
  model: string;
  /** data.train, likewise. */
  data: string;
  format: 'text' | 'alpaca' | 'chat';
  /** output.dir, likewise. */
  outputDir: string;
}

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

/** A YAML scalar that needs no quotes stays bare; anything else is quoted. */
function yamlString(s: string): string {
  return /^[\w./@+-][\w ./@+-]*$/.test(s) && !/^(true|false|null|~|yes|no|on|off)$/i.test(s) && !/^[-+.\d]/.test(s.replace(/^\.\//, 'x'))
    ? s
    : JSON.stringify(s);
}

export function scaffoldConfig(choices: ScaffoldChoices): string {
  const chosen: Record<string, string> = {
    'model.base': yamlString(choices.model),
    'data.train': yamlString(choices.data),
    'data.format': choices.format,
    'output.dir': yamlString(choices.outputDir),
  };
  const lines = ['# QLoRA fine-tune config. Hover a key for its documentation; the code lens above', '# line 1 estimates what the run costs before it starts.'];
  for (const section of SECTION_NAMES) {
    const spec = SCHEMA[section];
    lines.push('', `# ${spec.description}`, `${section}:`);
    for (const [name, key] of Object.entries(spec.keys as Readonly<Record<string, KeySpec>>)) {
      const value = chosen[`${section}.${name}`] ?? formatDefault(key);
      lines.push(`  # ${key.description}`);
      // Keys without a default (max_steps, validation) are shown commented out.
      lines.push(value === undefined ? `  # ${name}:` : `  ${name}: ${value}`);
    }
  }
  return lines.join('\n') + '\n';
}

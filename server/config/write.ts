// The text of a .qlora file from values, with sections and keys in the schema's order, for
// code that writes configs (the demo, test fixtures, benchmarks). Keys left out take their
// defaults when the file is parsed. No value is checked here: parse() does that, so a
// fixture can also write a deliberately wrong one.
import { stringify } from 'yaml';
import { SCHEMA, SECTION_NAMES, type KeySpec, type SectionName } from './schema';
import { formatDefault } from './describe';

export type ConfigValues = { [S in SectionName]?: { [K in keyof (typeof SCHEMA)[S]['keys']]?: unknown } };

/** `comment` becomes the file's first lines, each prefixed with '# '. */
export function configText(values: ConfigValues, comment?: string): string {
  const ordered: Record<string, Record<string, unknown>> = {};
  for (const section of SECTION_NAMES) {
    const given = values[section] as Record<string, unknown> | undefined;
    if (!given) continue;
    for (const key of Object.keys(given)) {
      if (!(key in SCHEMA[section].keys)) throw new Error(`configText: ${section}.${key} is not a key of the schema`);
    }
    ordered[section] = {};
    for (const key of Object.keys(SCHEMA[section].keys)) if (given[key] !== undefined) ordered[section][key] = given[key];
  }
  const head = comment ? comment.split('\n').map((l) => `# ${l}`.trimEnd()).join('\n') + '\n' : '';
  return head + stringify(ordered, { indent: 2, flowCollectionPadding: false });
}

/** A YAML scalar that needs no quotes stays bare; anything else is quoted. */
export function yamlScalar(s: string): string {
  return /^[\w./@+-][\w ./@+-]*$/.test(s) && !/^(true|false|null|~|yes|no|on|off)$/i.test(s) && !/^[-+.\d]/.test(s.replace(/^\.\//, 'x'))
    ? s
    : JSON.stringify(s);
}

/**
 * A self-documenting `.qlora` text (the New Fine-Tune Config scaffold): every key of the
 * schema in its order with its one-line description as a comment, set to `values[path]`
 * (YAML text) or its default; keys in `commented` are written commented out with that
 * value, and keys without a default are shown commented out.
 */
export function annotatedConfigText(values: Readonly<Record<string, string>>, commented: Readonly<Record<string, string>>, header: string[]): string {
  const lines = header.map((l) => `# ${l}`.trimEnd());
  for (const section of SECTION_NAMES) {
    const spec = SCHEMA[section];
    lines.push('', `# ${spec.description}`, `${section}:`);
    for (const [name, key] of Object.entries(spec.keys as Readonly<Record<string, KeySpec>>)) {
      const path = `${section}.${name}`;
      const value = values[path] ?? formatDefault(key);
      lines.push(`  # ${key.description}`);
      if (commented[path] !== undefined) lines.push(`  # ${name}: ${commented[path]}`);
      else lines.push(value === undefined ? `  # ${name}:` : `  ${name}: ${value}`);
    }
  }
  return lines.join('\n') + '\n';
}

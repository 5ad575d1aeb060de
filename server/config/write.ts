// The text of a .qlora file from values, with sections and keys in the schema's order, for
// code that writes configs (the demo, test fixtures, benchmarks). Keys left out take their
// defaults when the file is parsed. No value is checked here: parse() does that, so a
// fixture can also write a deliberately wrong one.
import { stringify } from 'yaml';
import { SCHEMA, SECTION_NAMES, type SectionName } from './schema';

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

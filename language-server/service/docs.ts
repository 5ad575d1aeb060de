// Markdown for keys, sections, values and modules, from the schema: what completion
// items and hovers show.
import { AXOLOTL_NAMES } from '../../server/config/axolotl/names';
import { linearShape, type LinearModule, type LlamaConfig } from '../../server/engine/model/config';
import {
  describeType,
  formatDefault,
  MODULE_DOCS,
  SCHEMA,
  sectionKeys,
  type KeyInfo,
  type SectionName,
} from '../../server/config';

/** One line: `integer ≥ 1 · default 8`. */
export function keySummary(key: KeyInfo): string {
  const d = formatDefault(key.spec);
  const tail = key.spec.required ? 'required' : d === undefined ? 'optional' : `default ${d}`;
  return `${describeType(key.spec)} · ${tail}`;
}

export function keyMarkdown(key: KeyInfo): string {
  const parts = [`**${key.path}** — ${keySummary(key)}`, key.spec.description];
  if (key.spec.type === 'enum') {
    parts.push(Object.entries(key.spec.values).map(([v, doc]) => `- \`${v}\` — ${doc}`).join('\n'));
  }
  if (key.spec.aliases?.length) parts.push(`Other tools call it ${key.spec.aliases.map((a) => `\`${a}\``).join(', ')}.`);
  const axolotl = AXOLOTL_NAMES[key.path];
  if (axolotl !== undefined) {
    parts.push(axolotl ? `Axolotl: ${axolotl.map((a) => `\`${a}\``).join(', ')}.` : 'Axolotl: no equivalent (left out of `qlora export axolotl`, with a warning when set).');
  }
  return parts.join('\n\n');
}

export function sectionMarkdown(section: SectionName): string {
  const keys = sectionKeys(section).map((k) => `- \`${k.name}\` — ${keySummary(k)}`);
  return [`**${section}** — ${SCHEMA[section].description}`, keys.join('\n')].join('\n\n');
}

/** The doc of one value of an enum key, with the key's line for context. */
export function enumValueMarkdown(key: KeyInfo, value: string): string | undefined {
  if (key.spec.type !== 'enum') return undefined;
  const doc = key.spec.values[value];
  if (doc === undefined) return undefined;
  const isDefault = key.spec.default === value ? ' (the default)' : '';
  return `**${key.path}: ${value}**${isDefault} — ${doc}`;
}

/**
 * A module's doc; with the model's architecture, its shape and the parameters an adapter
 * of rank r adds to it: r x (in + out) per layer.
 */
export function moduleMarkdown(module: LinearModule, model: LlamaConfig | undefined, r: number): string {
  const head = `**${module}** — ${MODULE_DOCS[module]}`;
  if (!model) return `${head}\n\nAn adapter of rank r adds r × (in + out) parameters per layer (model.base is not readable, so the sizes are unknown).`;
  const [out, inp] = linearShape(model, module);
  const perLayer = r * (inp + out);
  return (
    `${head}\n\n` +
    `Weight ${out} × ${inp} (out × in) in each of ${model.numLayers} layers. ` +
    `At r = ${r} the adapter adds ${r} × (${inp} + ${out}) = ${perLayer.toLocaleString('en-US')} parameters per layer, ` +
    `**${(perLayer * model.numLayers).toLocaleString('en-US')}** in all.`
  );
}

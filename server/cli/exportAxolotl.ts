// `qlora export axolotl CONFIG.qlora --out FILE.yml`: the same run as an Axolotl config,
// for a cluster (DeepSpeed ZeRO or FSDP). The YAML is written to a temporary file and
// renamed; data and output paths are relative to it.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parse, UsageError } from './common';
import { loadConfigFile } from '../config/load';
import { formatDiagnostic } from '../config/diagnostics';
import { AXOLOTL_VERSION } from '../config/axolotl/names';
import { MULTI_GPU, toAxolotl, yamlDirOf, type MultiGpu } from '../config/axolotl/export';
import { toYaml11 } from '../config/axolotl/yaml11';
import { locateModel } from '../engine/formats/modelFolder';

export const exportAxolotlUsage = 'qlora export axolotl CONFIG.qlora --out FILE.yml [--base-model HUB_ID] [--gpus N] [--multi-gpu deepspeed|fsdp] [--force] [--json]';

/** The Axolotl YAML text for a .qlora file, and what did not carry over. */
export function axolotlYamlFor(file: string, outFile: string, o: { baseModel?: string; gpus?: number; multiGpu?: MultiGpu } = {}) {
  const { config, diagnostics, text } = loadConfigFile(file);
  const explicit = new Set<string>();
  const raw = parseYaml(text) as Record<string, Record<string, unknown> | null> | null;
  for (const [section, keys] of Object.entries(raw ?? {})) for (const key of Object.keys(keys ?? {})) explicit.add(`${section}.${key}`);
  let baseIsLlama2c = false, decoderLayerClass: string | undefined;
  try {
    const loc = locateModel(config.model.base);
    baseIsLlama2c = loc.format !== 'huggingface';
    if (loc.format === 'huggingface') {
      const arch = (JSON.parse(readFileSync(loc.configFile, 'utf8')) as { architectures?: string[] }).architectures?.[0];
      if (arch?.endsWith('ForCausalLM')) decoderLayerClass = arch.replace(/ForCausalLM$/, 'DecoderLayer');
    }
  } catch { /* the base is on the cluster only: --base-model names it */ }
  const { config: ax, warnings } = toAxolotl(config, { yamlDir: yamlDirOf(outFile), ...o, baseIsLlama2c, decoderLayerClass, explicitKeys: explicit });
  const yaml = toYaml11(ax, `Axolotl ${AXOLOTL_VERSION} config exported by \`qlora export axolotl\` from ${resolve(file)}.\n` +
    'Run it with: axolotl train ' + outFile.split('/').pop());
  return { yaml, config: ax, warnings, diagnostics };
}

export async function exportAxolotl(args: string[]): Promise<void> {
  const { values: v, positionals } = parse(args, {
    out: { type: 'string' }, 'base-model': { type: 'string' }, gpus: { type: 'string' }, 'multi-gpu': { type: 'string' },
    force: { type: 'boolean' }, json: { type: 'boolean' },
  }, true);
  if (positionals.length !== 1) throw new UsageError('expected one CONFIG.qlora file');
  if (!v.out) throw new UsageError('--out FILE.yml is required');
  const gpus = v.gpus === undefined ? undefined : Number(v.gpus);
  if (gpus !== undefined && !(Number.isInteger(gpus) && gpus >= 1)) throw new UsageError(`--gpus must be a whole number of at least 1 (got '${v.gpus}')`);
  const multi = v['multi-gpu'];
  if (multi !== undefined && !(MULTI_GPU as readonly string[]).includes(multi)) throw new UsageError(`--multi-gpu must be ${MULTI_GPU.join(' or ')} (got '${multi}')`);
  const out = resolve(v.out);
  if (existsSync(out) && !v.force) throw new UsageError(`${v.out} exists: pass --force to replace it`);
  const r = axolotlYamlFor(positionals[0], out, { baseModel: v['base-model'], gpus, multiGpu: multi as MultiGpu | undefined });
  for (const d of r.diagnostics) process.stderr.write(formatDiagnostic(positionals[0], d) + '\n');
  const tmp = join(dirname(out), `.${out.split('/').pop()}.tmp-${process.pid}`);
  writeFileSync(tmp, r.yaml);
  renameSync(tmp, out);
  for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
  if (v.json) process.stdout.write(JSON.stringify({ out, warnings: r.warnings }) + '\n');
  else process.stdout.write(`wrote ${v.out}${r.warnings.length ? ` (${r.warnings.length} warning${r.warnings.length > 1 ? 's' : ''} above)` : ''}\n`);
}

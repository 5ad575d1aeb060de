// From the values a file set to a ResolvedConfig: defaults for what it left out, paths
// made absolute against the file's folder, `all-linear` spelled out as the seven modules.
import { homedir } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { LINEAR_MODULES } from '../engine/model/config';
import { ALL_KEYS, ALL_LINEAR, SECTION_NAMES, type ResolvedConfig } from './schema';

/** `values` maps `section.key` to the checked value of each key the file set correctly. */
export function resolveConfig(values: Map<string, unknown>, baseDir: string): ResolvedConfig {
  const config: Record<string, Record<string, unknown>> = {};
  for (const section of SECTION_NAMES) config[section] = {};
  for (const key of ALL_KEYS) {
    let v = values.has(key.path) ? values.get(key.path) : key.spec.default;
    if (key.spec.type === 'modules' && (v === ALL_LINEAR || v === undefined)) v = [...LINEAR_MODULES];
    else if (key.spec.type === 'modules' && Array.isArray(v)) v = [...v];
    if (key.spec.type === 'path') v = typeof v === 'string' ? resolveAgainst(baseDir, v) : key.spec.required ? '' : undefined;
    config[key.section][key.name] = v;
  }
  return config as unknown as ResolvedConfig;
}

/** A path as the file wrote it, made absolute; `~/` is the home folder, as in a shell. */
export function resolveAgainst(baseDir: string, written: string): string {
  if (written === '~' || written.startsWith('~/')) return resolvePath(homedir(), written.slice(2));
  return resolvePath(baseDir, written);
}

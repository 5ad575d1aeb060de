// A .qlora file from disk, checked the way the language server checks it (syntax, schema,
// conflicts, then the files it names), for the CLI and the training server: one set of
// messages everywhere, `file:line:col: message`.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { formatDiagnostic, hasErrors, type ConfigDiagnostic } from './diagnostics';
import { parseAndCheck } from './index';
import type { ResolvedConfig } from './schema';

export class ConfigError extends Error {
  constructor(readonly file: string, readonly diagnostics: ConfigDiagnostic[]) {
    super(diagnostics.filter((d) => d.severity === 'error').map((d) => formatDiagnostic(file, d)).join('\n'));
    this.name = 'ConfigError';
  }
}

/** Parses and checks config text; throws ConfigError listing every error. */
export function checkConfigText(text: string, baseDir: string, file: string): { config: ResolvedConfig; diagnostics: ConfigDiagnostic[] } {
  const { config, diagnostics } = parseAndCheck(text, baseDir);
  if (hasErrors(diagnostics)) throw new ConfigError(file, diagnostics);
  return { config, diagnostics };
}

export function loadConfigFile(file: string): { config: ResolvedConfig; diagnostics: ConfigDiagnostic[]; text: string } {
  const abs = resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return { ...checkConfigText(text, dirname(abs), file), text };
}

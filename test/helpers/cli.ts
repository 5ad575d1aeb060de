// Runs the real `qlora` command (from source, through tsx) and returns what it printed.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from './shared';

export interface CliResult { code: number; stdout: string; stderr: string }

export function qlora(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): CliResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(projectRoot, 'server/cli.ts'), ...args], {
    cwd: opts.cwd ?? projectRoot, encoding: 'utf8', env: { ...process.env, ...opts.env }, timeout: 300_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The single JSON object a --json command printed. */
export function qloraJson<T>(args: string[]): T {
  const r = qlora([...args, '--json']);
  if (r.code !== 0) throw new Error(`qlora ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

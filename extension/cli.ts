// Runs the bundled `qlora` command (dist/cli.js) in a child process with the same Node
// as the training server, for work that should not run in the extension host: merging
// an adapter, generating text.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { NodeRuntime } from './nodeRuntime';

export interface CliRun {
  /** Resolves with stdout when the command exits 0; rejects with its last stderr lines otherwise. */
  done: Promise<string>;
  cancel(): void;
}

export function runCli(
  cliPath: string,
  runtime: NodeRuntime,
  args: string[],
  onLine?: (line: string) => void,
): CliRun {
  const child = spawn(runtime.command, [cliPath, ...args], {
    env: { ...process.env, ...runtime.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    windowsHide: true,
  });
  const out: string[] = [];
  const err: string[] = [];
  createInterface({ input: child.stdout }).on('line', (l) => {
    out.push(l);
    onLine?.(l);
  });
  createInterface({ input: child.stderr }).on('line', (l) => err.push(l));
  const done = new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve(out.join('\n'));
      else reject(new Error(err.slice(-5).join('\n') || `qlora ${args[0]} ended with ${signal ?? `code ${code}`}`));
    });
  });
  return { done, cancel: () => child.kill('SIGTERM') };
}

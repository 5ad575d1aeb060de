// `qlora serve`: the local training server the extension starts. Prints one JSON line,
// {"port":N}, on stdout once it listens; everything else goes to stderr. SIGTERM or
// SIGINT: the training run finishes its step, checkpoints, and the server exits.
// `qlora serve --worker` is the server's own training process (see server/http/worker.ts).
import { join, resolve } from 'node:path';
import { parse, UsageError } from './common';
import { TOKEN_ENV, type ServeReady } from '../protocol';
import type { WorkerJob } from '../http/worker';

export const serveUsage = 'qlora serve [--port N] [--runs-dir DIR] [--state-file FILE] [--idle-timeout SECONDS]   (bearer token from $QLORA_SERVER_TOKEN)';

export async function serveCommand(args: string[]): Promise<void> {
  const { values: v } = parse(args, {
    port: { type: 'string' }, 'runs-dir': { type: 'string' }, worker: { type: 'boolean' },
    'state-file': { type: 'string' }, 'idle-timeout': { type: 'string' },
  });
  if (v.worker) return workerMode();
  const port = v.port === undefined ? 0 : Number(v.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0-65535 (got '${v.port}')`);
  const idleSeconds = v['idle-timeout'] === undefined ? 0 : Number(v['idle-timeout']);
  if (!(Number.isFinite(idleSeconds) && idleSeconds >= 0)) throw new UsageError(`--idle-timeout must be seconds, 0 or more (got '${v['idle-timeout']}')`);
  const { startServer } = await import('../http/server');
  const { stateFileFor } = await import('../http/stateFile');
  const runsDir = resolve(v['runs-dir'] ?? join(process.cwd(), '.qlora', 'runs'));
  let stop: (why: string) => void = () => {};
  const stopped = new Promise<string>((res) => (stop = res));
  const server = await startServer({
    port, runsDir, token: process.env[TOKEN_ENV], stateFile: v['state-file'] ? resolve(v['state-file']) : stateFileFor(runsDir),
    idleTimeoutMs: idleSeconds * 1000, onIdle: () => stop(`idle for ${idleSeconds} s with no runs: stopping`),
  });
  const ready: ServeReady = { port: server.port };
  process.stdout.write(JSON.stringify(ready) + '\n');
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      // Asked twice: do not wait for the step. The training process, orphaned, stops by itself;
      // the run resumes from its newest complete checkpoint.
      process.stderr.write(`qlora serve: ${signal} again: exiting without waiting for a checkpoint\n`);
      process.exit(1);
    }
    stop(`${signal}: letting the current step finish and checkpointing (send it again to exit at once)`);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const why = await stopped;
  process.stderr.write(`qlora serve: ${why}\n`);
  await server.shutdown().catch((e: Error) => process.stderr.write(`qlora serve: ${e.message}\n`));
  process.exit(0);
}

async function workerMode(): Promise<void> {
  if (!process.send) throw new UsageError('--worker is the training server\'s own training process; it needs an IPC channel');
  const { runWorker } = await import('../http/worker');
  // Ctrl+C in a terminal, or a SIGTERM to the process group, reaches this process too:
  // the server decides when it stops (after a checkpoint), and it stops by itself when orphaned.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {});
  const job = await new Promise<WorkerJob>((res) => {
    const onMessage = (m: { kind?: string; job?: WorkerJob }) => {
      if (m?.kind === 'job' && m.job) { process.off('message', onMessage); res(m.job); }
    };
    process.on('message', onMessage);
  });
  // Whatever happens, this process ends: its IPC channel would otherwise keep it idling forever.
  let code = 1;
  try {
    code = await runWorker(job);
  } catch (e) {
    process.stderr.write(`qlora worker: ${(e as Error).stack ?? String(e)}\n`);
  }
  process.exit(code);
}

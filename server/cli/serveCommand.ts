// `qlora serve`: the local training server the extension starts. Prints one JSON line,
// {"port":N}, on stdout once it listens; everything else goes to stderr. SIGTERM or
// SIGINT: the training run finishes its step, checkpoints, and the server exits.
// `qlora serve --worker` is the server's own training process (see server/http/worker.ts).
import { join } from 'node:path';
import { parse, UsageError } from './common';
import { TOKEN_ENV, type ServeReady } from '../protocol';
import type { WorkerJob } from '../http/worker';

export const serveUsage = 'qlora serve [--port N] [--runs-dir DIR]   (bearer token from $QLORA_SERVER_TOKEN)';

export async function serveCommand(args: string[]): Promise<void> {
  const { values: v } = parse(args, {
    port: { type: 'string' }, 'runs-dir': { type: 'string' }, worker: { type: 'boolean' },
  });
  if (v.worker) return workerMode();
  const port = v.port === undefined ? 0 : Number(v.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0-65535 (got '${v.port}')`);
  const { startServer } = await import('../http/server');
  const server = await startServer({
    port, runsDir: v['runs-dir'] ?? join(process.cwd(), '.qlora', 'runs'), token: process.env[TOKEN_ENV],
  });
  const ready: ServeReady = { port: server.port };
  process.stdout.write(JSON.stringify(ready) + '\n');
  await new Promise<void>((res) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      if (++signals > 1) {
        // Asked twice: do not wait for the step. The training process, orphaned, stops by itself;
        // the run resumes from its newest complete checkpoint.
        process.stderr.write(`qlora serve: ${signal} again: exiting without waiting for a checkpoint\n`);
        process.exit(1);
      }
      process.stderr.write(`qlora serve: ${signal}: letting the current step finish and checkpointing (send it again to exit at once)\n`);
      server.shutdown().then(res, (e: Error) => { process.stderr.write(`qlora serve: ${e.message}\n`); res(); });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
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

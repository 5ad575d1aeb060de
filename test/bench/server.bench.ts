// The training server under load, on a real `qlora serve`: health latency while a run
// trains (idle, then with event streams attached), and how fast a client that connects
// late gets a long history replayed from metrics.jsonl. Prints a table; asserts nothing.
//   node --import tsx test/bench/server.bench.ts [--requests 1000] [--streams 4]
import { parseArgs } from 'node:util';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { http, sse, startServer, workspace, type SseStream } from '../server/harness';
import type { CreateRunResponse } from '../../server/protocol';

const { values: a } = parseArgs({ options: { requests: { type: 'string', default: '1000' }, streams: { type: 'string', default: '4' } } });
const requests = Number(a.requests), streams = Number(a.streams);

const ws = workspace(2);
const runsDir = join(ws.dir, 'runs-state');
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

async function healthTimes(port: number, n: number): Promise<number[]> {
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await http(port, 'GET', '/v1/health');
    t.push(performance.now() - t0);
    if (r.status !== 200) throw new Error(`health ${r.status}`);
    if (i % 10 === 0) await new Promise((res) => setTimeout(res, 5));
  }
  return t.sort((x, y) => x - y);
}

(async () => {
  const server = await startServer(runsDir);
  try {
    const row = (what: string, t: number[]) => console.log(`${what.padEnd(44)} ${pct(t, 50).toFixed(2).padStart(7)} ${pct(t, 99).toFixed(2).padStart(7)} ${t[t.length - 1].toFixed(2).padStart(7)}`);
    console.log(`${'health, ms'.padEnd(44)} ${'p50'.padStart(7)} ${'p99'.padStart(7)} ${'max'.padStart(7)}`);
    row(`idle server (${requests} requests)`, await healthTimes(server.port, requests));

    const created = await http(server.port, 'POST', '/v1/runs', {
      body: { configText: ws.configText({ maxSteps: 100_000, saveEvery: 50, evalEvery: 100, maxSeqLen: 64, microBatch: 4 }, './runs/bench'), baseDir: ws.dir },
    });
    const { id } = created.json() as CreateRunResponse;
    const first = sse(server.port, id);
    await first.waitFor((e) => e.data.type === 'step', 60_000, 'first step');
    row(`while training (${requests} requests)`, await healthTimes(server.port, requests));
    const attached: SseStream[] = Array.from({ length: streams }, () => sse(server.port, id));
    row(`while training, ${streams + 1} event streams open`, await healthTimes(server.port, requests));
    const steps = first.events.filter((e) => e.data.type === 'step').length;
    console.log(`(${steps} steps streamed meanwhile)`);
    // How long a step takes from the trainer writing its record to a client of the stream:
    // the server's part of the Metrics view's step-to-drawn delay.
    const live = first.events.filter((e) => e.data.type === 'step').map((e) => e.receivedAt - e.data.time).sort((x, y) => x - y);
    row(`step record -> event stream client (${live.length} steps)`, live);
    for (const s of attached) s.close();

    // Replay: a late client asks for the whole history.
    await first.waitFor((e) => e.id !== null && e.id >= 2000, 600_000, '2000 events');
    first.close();
    await http(server.port, 'POST', `/v1/runs/${id}/stop`);
    const t0 = performance.now();
    const late = sse(server.port, id);
    await late.waitFor((e) => e.data.type === 'state' && (e.data as { state: string }).state === 'stopped', 120_000, 'stopped');
    const ms = performance.now() - t0;
    late.close();
    console.log(`replay of ${late.events.length} events to a client connecting late: ${ms.toFixed(0)} ms ` +
      `(${(late.events.length / (ms / 1000)).toFixed(0)} events/s, including the stop's last step)`);
  } finally {
    server.kill('SIGKILL', true);
    await server.exited;
    rmSync(ws.dir, { recursive: true, force: true });
  }
})().catch((e) => { console.error(e); process.exit(1); });

// The fuzz suite (issue 20): a few hundred seeded cases over the ways hostile input
// gets in: model files (through loadModel), tokenizer files (a real tokenizer's JSON), JSONL data lines (through buildExamples with a
// real tokenizer), .qlora texts (through the language service) and HTTP requests (to a
// real `qlora serve`). Cases run in a child process (child.ts) that prints a line per
// case, so a crash (the child dies) or a hang (no line in time) is counted and the run goes
// on from the next case. Every case must end accepted or refused cleanly: a message that
// names the file (and line, for a bad data line) or the config key. Replay with FUZZ_SEED.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../helpers/shared';
import { http, startServer, TOKEN, workspace, type ServerProcess } from '../server/harness';
import { mulberry32, pick, type Outcome } from './random';

const SEED = Number(process.env.FUZZ_SEED ?? 20);
/** No line from the child for this long: the case hangs. */
const HANG_MS = 30_000;

interface Tally { cases: number; accepted: number; clean: number; unclear: string[]; crashes: string[]; hangs: string[] }

function tally(): Tally { return { cases: 0, accepted: 0, clean: 0, unclear: [], crashes: [], hangs: [] }; }

function report(kind: string, t: Tally): void {
  console.log(`# fuzz ${kind}: ${t.cases} cases, ${t.accepted} accepted, ${t.clean} clean errors, ${t.unclear.length} unclear, ` +
    `${t.crashes.length} crashes, ${t.hangs.length} hangs (seed ${SEED})`);
  for (const u of [...t.unclear, ...t.crashes, ...t.hangs].slice(0, 10)) console.log(`#   ${u}`);
}

/** Runs cases [0, n) of `kind` in child processes, restarting after a crash or hang. */
async function runCases(kind: string, n: number): Promise<Tally> {
  const t = tally();
  let from = 0;
  while (from < n) {
    const seen = await new Promise<{ last: number; ended: boolean; died: string | null }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', join(projectRoot, 'test/fuzz/child.ts'), kind, String(SEED), String(from), String(n)], {
        cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'],
      });
      let last = from - 1, ended = false, buf = '', stderr = '', hung = false;
      let timer = setTimeout(() => { hung = true; child.kill('SIGKILL'); }, HANG_MS * 2); // the first case includes start-up
      child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-2000); });
      child.stdout.setEncoding('utf8').on('data', (s: string) => {
        buf += s;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (!line.startsWith('{')) continue;
          const r = JSON.parse(line) as { end?: boolean; i: number } & Outcome;
          if (r.end) { ended = true; continue; }
          last = r.i;
          t.cases++;
          if (r.outcome === 'accepted') t.accepted++;
          else if (r.outcome === 'clean') t.clean++;
          else if (r.outcome === 'threw') t.crashes.push(`case ${r.i} (${r.what}) threw: ${r.message?.split('\n')[0]}`);
          else t.unclear.push(`case ${r.i} (${r.what}): ${r.message}`);
          clearTimeout(timer);
          timer = setTimeout(() => { hung = true; child.kill('SIGKILL'); }, HANG_MS);
        }
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ last, ended, died: ended ? null : hung ? 'hang' : `exit ${code ?? signal}: ${stderr.trim().split('\n').slice(-3).join(' | ')}` });
      });
    });
    if (seen.ended) break;
    // The case after the last one reported is the one that crashed or hung.
    const culprit = seen.last + 1;
    t.cases++;
    (seen.died === 'hang' ? t.hangs : t.crashes).push(`case ${culprit}: ${seen.died}`);
    from = culprit + 1;
  }
  return t;
}

for (const [kind, n] of [['models', 120], ['tokenizers', 80], ['jsonl', 120], ['qlora', 150]] as const) {
  test(`fuzz ${kind}: ${n} seeded cases, each accepted or refused with a message naming the file or field; no crash, no hang`, async () => {
    const t = await runCases(kind, n);
    report(kind, t);
    assert.equal(t.cases, n);
    assert.deepEqual(t.crashes, [], 'crashes');
    assert.deepEqual(t.hangs, [], 'hangs');
    assert.deepEqual(t.unclear, [], 'unclear errors');
    assert.ok(t.clean > n / 4, `most mutations are refused (${t.clean} of ${n})`);
  });
}

const servers: ServerProcess[] = [];
const dirs: string[] = [];
after(async () => {
  for (const s of servers) { s.kill('SIGKILL', true); await s.exited; }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('fuzz http: 200 seeded requests get a 2xx/4xx with a JSON error naming the problem; never a 5xx, a hang, or a dead server', async () => {
  const ws = workspace(1);
  dirs.push(ws.dir);
  const empty = mkdtempSync(join(tmpdir(), 'qlora-fuzz-empty-'));
  dirs.push(empty);
  const server = await startServer(join(ws.dir, 'runs-http'));
  servers.push(server);
  const next = mulberry32(SEED);
  const good = ws.configText({ maxSteps: 2, saveEvery: 0, evalEvery: 0 }, './runs/fuzz');
  const mutateConfig = (): string => {
    let text = good;
    for (let k = 0; k < 1 + Math.floor(next() * 6); k++) {
      const at = Math.floor(next() * text.length);
      text = text.slice(0, at) + pick(next, ['{', '[', '\n  ', ': ', '#', '- ', '\u0000', '"', '../../', '/etc', '9'.repeat(40), '-1', '\t']) + text.slice(at + Math.floor(next() * 4));
    }
    return text;
  };
  const bodies: (() => string | object)[] = [
    () => ({ configText: mutateConfig(), baseDir: empty }), // files absent: never a real run
    () => ({ configText: mutateConfig(), baseDir: pick(next, ['relative/dir', '', '/', '/nonexistent/x', 7, null]) }),
    () => ({ configText: pick(next, [7, null, [], {}, true, '']), baseDir: empty }),
    () => ({ configText: good, baseDir: empty, maxSteps: pick(next, [0, -1, 1.5, '3', 1e300, null]) }),
    () => ({ configText: good, baseDir: empty, overwrite: pick(next, ['yes', 1, null]), configFile: pick(next, [3, {}, '/etc/passwd']) }),
    () => ({ configText: `${good}extra:\n  ${'- '.repeat(5000)}x\n`, baseDir: ws.dir }),
    () => ({ configText: `${good}# ${'x'.repeat(200_000)}`, baseDir: ws.dir }),
    () => pick(next, ['{', '[]', 'null', '"x"', '{"configText":', '\u0000', '{"__proto__": {"x": 1}}', 'a'.repeat(2000)]),
  ];
  const paths = ['/v1/runs', '/v1/health', '/v1/runs/..%2f..%2fetc', '/v1/runs/%00', '/v1/runs/x/events', '/v1/runs/x/stop', '/v1/runs/x/resume',
    `/v1/runs/${'a'.repeat(300)}`, '/v1/runs/../../etc/passwd', '/v1//runs', '/v1/runs?x=%zz', '/%', '/v1/runs/%E0%A4%A', '/v1/runs/20260101-000000-abcdef'];
  const statuses = new Map<number, number>();
  let fiveHundreds = 0, hangs = 0, unnamed = 0;
  const N = 200;
  for (let i = 0; i < N; i++) {
    const method = pick(next, ['GET', 'POST', 'POST', 'POST', 'PUT', 'DELETE', 'OPTIONS']);
    const path = method === 'POST' && next() < 0.6 ? '/v1/runs' : pick(next, paths);
    const body = method === 'POST' || next() < 0.1 ? pick(next, bodies)() : undefined;
    const o: Parameters<typeof http>[3] = { body, timeoutMs: 20_000 };
    const auth = next();
    if (auth < 0.05) o.token = null;
    else if (auth < 0.1) o.authorization = pick(next, [`Bearer ${TOKEN}x`, 'Basic abc', `bearer ${TOKEN}`, '']);
    if (next() < 0.05) o.host = pick(next, ['evil.example', `localhost:${server.port + 1}`, '']);
    try {
      const r = await http(server.port, method, path, o);
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (r.status >= 500) { fiveHundreds++; console.log(`# 5xx on ${method} ${path}: ${r.text.slice(0, 200)}`); }
      if (r.status >= 400 && r.status !== 404 && r.status !== 401 && r.status !== 403) {
        const err = (() => { try { return (r.json() as { error?: string }).error; } catch { return undefined; } })();
        if (!err || err.length < 8) { unnamed++; console.log(`# no clear error on ${method} ${path} (${r.status}): ${r.text.slice(0, 200)}`); }
      }
    } catch (e) {
      hangs++;
      console.log(`# ${method} ${path}: ${(e as Error).message}`);
    }
  }
  const health = await http(server.port, 'GET', '/v1/health');
  console.log(`# fuzz http: ${N} requests, statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}, ` +
    `${fiveHundreds} 5xx, ${unnamed} unclear, ${hangs} hangs; health after: ${health.status}`);
  assert.equal(fiveHundreds, 0);
  assert.equal(hangs, 0);
  assert.equal(unnamed, 0);
  assert.equal(health.status, 200);
  assert.equal(server.child.exitCode, null);
});

// GET /v1/runs/:id/events: a run's records as Server-Sent Events. A client that sends
// Last-Event-ID (or ?lastEventId=) gets every record after that id from metrics.jsonl,
// in order, then the live tail with nothing missed or repeated in between.
import type { Request, Response } from 'express';
import { sseEventName, type RunRecord, type StateEvent } from '../protocol';
import { ApiError } from './errors';
import type { Run } from './run';
import type { RunManager } from './runManager';

const KEEPALIVE_MS = 15_000;

export function streamRunEvents(req: Request, res: Response, run: Run, manager: RunManager, onClose: (end: () => void) => () => void): void {
  const after = lastEventId(req);
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  res.write('retry: 2000\n\n');
  let replayed = false;
  const held: StateEvent[] = [];
  const sendRecord = (r: RunRecord) => { res.write(`id: ${r.id}\nevent: ${sseEventName(r)}\ndata: ${JSON.stringify(r)}\n\n`); };
  // No id: a live-only event must not move the client's Last-Event-ID.
  const sendTransient = (e: StateEvent) => { res.write(`event: state\ndata: ${JSON.stringify(e)}\n\n`); };
  const { history, unsubscribe, flush } = run.log.replayAndSubscribe(after, sendRecord);
  const offTransient = manager.onTransient(run.id, (e) => (replayed ? sendTransient(e) : held.push(e)));
  const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
  let closed = false;
  const cleanup = () => {
    if (closed) return;
    closed = true;
    clearInterval(keepalive);
    unsubscribe();
    offTransient();
    forget();
  };
  const forget = onClose(() => { cleanup(); res.end(); });
  req.on('close', cleanup);
  res.on('error', cleanup);
  history.then((records) => {
    if (closed) return;
    for (const r of records) sendRecord(r);
    flush();
    replayed = true;
    for (const e of held.splice(0)) sendTransient(e);
  }, (e: Error) => {
    res.write(`event: error\ndata: ${JSON.stringify({ type: 'error', step: 0, message: `cannot read metrics.jsonl: ${e.message}` })}\n\n`);
    cleanup();
    res.end();
  });
}

function lastEventId(req: Request): number {
  const raw = req.get('Last-Event-ID') ?? (typeof req.query.lastEventId === 'string' ? req.query.lastEventId : undefined);
  if (raw === undefined || raw === '') return 0;
  if (!/^\d{1,15}$/.test(raw.trim())) throw new ApiError(400, 'bad-request', 'Last-Event-ID must be a non-negative integer');
  return Number(raw.trim());
}

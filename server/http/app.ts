// The training server's routes (DESIGN.md, "Training server API"); payloads are the
// types of server/protocol.ts. Only the guard runs before a request is authenticated.
import express, { type NextFunction, type Request, type Response } from 'express';
import { freemem, totalmem } from 'node:os';
import {
  MAX_BODY_BYTES, ROUTE_PATTERNS, Routes, type ConfigErrorResponse, type CreateRunRequest, type ErrorResponse, type HealthResponse,
  type RunListResponse,
} from '../protocol';
import { ApiError } from './errors';
import type { RunManager } from './runManager';
import { refuse, requireLoopbackAndToken } from './security';
import { streamRunEvents } from './sse';

export interface AppOptions {
  token: string;
  /** The port the server listens on, known once it does. */
  port: () => number;
  manager: RunManager;
  version: string;
  /** Registers an open event stream to be ended on shutdown; returns its unregistration. */
  trackStream: (end: () => void) => () => void;
}

export function createApp(o: AppOptions): express.Express {
  const started = Date.now();
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requireLoopbackAndToken(o.token, o.port));
  app.use(express.json({ limit: MAX_BODY_BYTES }));

  app.get(Routes.health, (_req, res) => {
    const h = o.manager.health();
    const mem = process.memoryUsage();
    const body: HealthResponse = {
      ok: true, version: o.version, api: 'v1', pid: process.pid, uptimeMs: Date.now() - started,
      backend: h.backend, device: h.device,
      memory: {
        rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, systemTotalBytes: totalmem(), systemFreeBytes: freemem(),
        training: h.worker,
      },
      runs: { queued: h.queued, training: h.training },
    };
    res.json(body);
  });

  app.get(Routes.runs, (_req, res) => {
    const body: RunListResponse = { runs: o.manager.list() };
    res.json(body);
  });

  app.post(Routes.runs, (req, res) => {
    if (!req.body || typeof req.body !== 'object' || Array.isArray(req.body)) {
      throw new ApiError(400, 'bad-request', 'expected a JSON object body (Content-Type: application/json)');
    }
    res.status(201).json(o.manager.create(req.body as CreateRunRequest));
  });

  app.post(Routes.importRun, (req, res) => {
    res.json(o.manager.importRun((req.body as { outputDir?: unknown } | undefined)?.outputDir));
  });

  app.get(ROUTE_PATTERNS.run, (req, res) => {
    res.json(o.manager.summary(o.manager.get(req.params.id)));
  });

  app.get(ROUTE_PATTERNS.events, (req, res) => {
    streamRunEvents(req, res, o.manager.get(req.params.id), o.manager, o.trackStream);
  });

  app.post(ROUTE_PATTERNS.stop, (req, res) => {
    res.json(o.manager.stop(req.params.id));
  });

  app.post(ROUTE_PATTERNS.resume, (req, res) => {
    res.json(o.manager.resume(req.params.id));
  });

  app.post(ROUTE_PATTERNS.rename, (req, res) => {
    res.json(o.manager.rename(req.params.id, (req.body as { name?: unknown } | undefined)?.name));
  });

  app.delete(ROUTE_PATTERNS.run, (req, res) => {
    o.manager.delete(req.params.id);
    res.status(204).end();
  });

  app.use((_req, res) => refuse(res, 404, { error: 'no such route', code: 'not-found' }));

  app.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) { next(err); return; }
    if (err instanceof ApiError) {
      if (err.diagnostics) {
        const body: ConfigErrorResponse = { error: err.message, diagnostics: err.diagnostics };
        res.status(err.status).json(body);
      } else {
        refuse(res, err.status, { error: err.message, code: err.code });
      }
      return;
    }
    const e = err as { status?: number; type?: string; message?: string };
    if (e.type === 'entity.too.large') { refuse(res, 413, { error: `request body over ${MAX_BODY_BYTES} bytes`, code: 'body-too-large' }); return; }
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      refuse(res, e.status, { error: e.message ?? 'bad request', code: 'bad-request' });
      return;
    }
    process.stderr.write(`qlora serve: ${(err as Error).stack ?? String(err)}\n`);
    const body: ErrorResponse = { error: (err as Error).message ?? 'internal error', code: 'internal' };
    res.status(500).json(body);
  });
  return app;
}

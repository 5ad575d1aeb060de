// The extension's side of the training server's HTTP API: one typed method per route of
// server/protocol.ts, plus the per-run event stream. Plain node:http, no `vscode`, so the
// unit tests and the benchmark use it as it is.
import { request, type IncomingMessage } from 'node:http';
import {
  Routes,
  type ConfigErrorResponse,
  type CreateRunRequest,
  type CreateRunResponse,
  type ErrorResponse,
  type HealthResponse,
  type RunListResponse,
  type RunSummary,
} from '../server/protocol';

export interface Endpoint {
  port: number;
  token: string;
}

/** A non-2xx answer; `body` is the server's JSON (ErrorResponse or ConfigErrorResponse). */
export class ServerError extends Error {
  constructor(
    readonly status: number,
    readonly body: Partial<ErrorResponse & ConfigErrorResponse>,
  ) {
    super(body.error ?? `HTTP ${status}`);
  }
}

export class ServerClient {
  constructor(readonly endpoint: Endpoint) {}

  health(timeoutMs = 5000): Promise<HealthResponse> {
    return this.json('GET', Routes.health, undefined, timeoutMs);
  }
  listRuns(): Promise<RunListResponse> {
    return this.json('GET', Routes.runs);
  }
  getRun(id: string): Promise<RunSummary> {
    return this.json('GET', Routes.run(id));
  }
  /** 201 with the new run, or a ServerError whose body carries the config's diagnostics (400). */
  createRun(body: CreateRunRequest): Promise<CreateRunResponse> {
    return this.json('POST', Routes.runs, body);
  }
  stopRun(id: string): Promise<RunSummary> {
    return this.json('POST', Routes.stop(id), {});
  }
  resumeRun(id: string): Promise<RunSummary> {
    return this.json('POST', Routes.resume(id), {});
  }
  renameRun(id: string, name: string): Promise<RunSummary> {
    return this.json('POST', Routes.rename(id), { name });
  }
  /** Forgets the run and deletes what it wrote into its output folder. */
  deleteRun(id: string): Promise<void> {
    return this.json('DELETE', Routes.run(id));
  }
  /** A run folder the CLI wrote joins the server's runs (idempotent). */
  importRun(outputDir: string): Promise<RunSummary> {
    return this.json('POST', Routes.importRun, { outputDir });
  }

  /** Opens a run's event stream after event `lastEventId` (all of it when undefined). */
  openEvents(id: string, lastEventId: number | undefined): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: this.endpoint.port,
          path: Routes.events(id),
          method: 'GET',
          headers: {
            ...this.headers(),
            Accept: 'text/event-stream',
            ...(lastEventId !== undefined ? { 'Last-Event-ID': String(lastEventId) } : {}),
          },
        },
        (res) => {
          if (res.statusCode === 200) return resolve(res);
          readBody(res).then((text) => reject(new ServerError(res.statusCode ?? 0, parseJson(text))), reject);
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  private headers(): Record<string, string> {
    return { Authorization: `Bearer ${this.endpoint.token}` };
  }

  private json<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: this.endpoint.port,
          path,
          method,
          timeout: timeoutMs,
          headers: {
            ...this.headers(),
            Accept: 'application/json',
            ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': String(payload.length) } : {}),
          },
        },
        (res) => {
          readBody(res).then((text) => {
            const status = res.statusCode ?? 0;
            if (status === 204) resolve(undefined as T);
            else if (status >= 200 && status < 300) resolve(parseJson(text) as T);
            else reject(new ServerError(status, parseJson(text)));
          }, reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
}

function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

function parseJson(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return { error: text.slice(0, 500) || 'empty answer' };
  }
}

// A run's events as one continuous feed across dropped connections and server restarts:
// each (re)connection sends the id of the last record delivered as Last-Event-ID, so the
// server replays exactly what was missed from metrics.jsonl and then the live tail.
import { parseRunRecord, type RunRecord, type StateEvent } from '../server/protocol';
import { ServerError, type ServerClient } from './serverClient';
import { SseParser } from './sse';

export interface RunStreamOptions {
  runId: string;
  /** Id of the newest record the consumer already has; undefined for the whole history. */
  lastEventId?: number;
  /** The client of the server as it is now (starting it if need be): its port changes when it restarts. */
  client: () => Promise<ServerClient>;
  onRecord: (record: RunRecord) => void;
  /** A live-only state update without an id (a queue position), never replayed. */
  onTransient?: (event: StateEvent) => void;
  /** A connection failed or ended; the stream retries after a delay unless the run is gone. */
  onProblem?: (message: string) => void;
  /** Delay before the first retry; doubles up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
}

export class RunStream {
  private lastId: number | undefined;
  private disposed = false;
  private current: { destroy(): void } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private retryMs: number;

  constructor(private readonly options: RunStreamOptions) {
    this.lastId = options.lastEventId;
    this.retryMs = options.retryMs ?? 500;
    void this.connect();
  }

  get runId(): string {
    return this.options.runId;
  }

  /** Id of the newest record delivered. */
  get lastEventId(): number | undefined {
    return this.lastId;
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
    this.current?.destroy();
  }

  private async connect(): Promise<void> {
    if (this.disposed) return;
    try {
      const client = await this.options.client();
      if (this.disposed) return;
      const res = await client.openEvents(this.options.runId, this.lastId);
      if (this.disposed) return void res.destroy();
      this.current = res;
      this.retryMs = this.options.retryMs ?? 500;
      const parser = new SseParser((e) => {
        // Checked, not trusted: a record that is not what protocol.ts declares is reported and dropped.
        const parsed = parseRunRecord(e.data);
        if (!parsed.ok) return this.options.onProblem?.(`unreadable event: ${parsed.why}`);
        if (!('id' in parsed.record) || typeof parsed.record.id !== 'number') {
          if (parsed.record.type === 'state') this.options.onTransient?.(parsed.record);
          return;
        }
        const record = parsed.record;
        // A replay that overlaps what was delivered is skipped, so the consumer sees each record once.
        if (this.lastId !== undefined && record.id <= this.lastId) return;
        this.lastId = record.id;
        this.options.onRecord(record);
      });
      await new Promise<void>((resolve) => {
        res.on('data', (chunk: Buffer) => parser.push(chunk));
        res.on('end', resolve);
        res.on('close', resolve);
        res.on('error', resolve);
      });
      this.current = undefined;
      if (!this.disposed) this.options.onProblem?.('event stream ended; reconnecting');
    } catch (e) {
      if (e instanceof ServerError && (e.status === 404 || e.status === 400)) {
        this.options.onProblem?.(`run ${this.options.runId}: ${e.message}`);
        return; // the run is gone or the id is invalid: nothing to wait for
      }
      if (!this.disposed) this.options.onProblem?.(`event stream: ${(e as Error).message}`);
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.disposed) return;
    this.timer = setTimeout(() => void this.connect(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, this.options.maxRetryMs ?? 10_000);
  }
}

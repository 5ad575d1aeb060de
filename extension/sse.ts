// A Server-Sent Events parser (the WHATWG "event stream interpretation" algorithm):
// bytes in, complete events out. Used by the run stream; no I/O here so that it can be
// fed a response chunk by chunk or a string in a test.

export interface SseEvent {
  /** The `id:` field in force when the event was dispatched ('' when none was ever sent). */
  id: string;
  /** The `event:` field; 'message' when absent. */
  event: string;
  data: string;
}

export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private eventType = '';
  private lastId = '';
  private readonly decoder = new TextDecoder();

  constructor(private readonly onEvent: (e: SseEvent) => void) {}

  /** Feeds the next chunk of the stream; a line split across chunks is held until complete. */
  push(chunk: Uint8Array | string): void {
    this.buffer += typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    let start = 0;
    for (;;) {
      const cr = this.buffer.indexOf('\r', start);
      const lf = this.buffer.indexOf('\n', start);
      if (cr < 0 && lf < 0) break;
      let end: number;
      let next: number;
      if (cr >= 0 && (lf < 0 || cr < lf)) {
        // A CR at the very end may be the first half of CRLF: wait for the next chunk.
        if (cr === this.buffer.length - 1) break;
        end = cr;
        next = this.buffer[cr + 1] === '\n' ? cr + 2 : cr + 1;
      } else {
        end = lf;
        next = lf + 1;
      }
      this.line(this.buffer.slice(start, end));
      start = next;
    }
    this.buffer = this.buffer.slice(start);
  }

  /** The id of the last event seen: what a reconnecting client sends as Last-Event-ID. */
  get lastEventId(): string {
    return this.lastId;
  }

  private line(line: string): void {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return; // a comment (keep-alive)
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.eventType = value;
    else if (field === 'id' && !value.includes('\0')) this.lastId = value;
    // `retry` and unknown fields are ignored: the run stream has its own back-off.
  }

  private dispatch(): void {
    const type = this.eventType || 'message';
    this.eventType = '';
    if (this.data.length === 0) return;
    const data = this.data.join('\n');
    this.data = [];
    this.onEvent({ id: this.lastId, event: type, data });
  }
}

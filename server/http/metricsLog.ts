// A run's metrics.jsonl: one RunRecord per line, ids increasing. The training process
// appends while it runs; the server appends state changes only while none does, and
// reads every line back in order (`pump`), so the file is the one source of both the
// replay and the live tail of the event stream.
import { closeSync, existsSync, openSync, readFileSync, readSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { RunEvent, RunRecord } from '../protocol';

export type RecordListener = (r: RunRecord) => void;

/** Step-bearing records that belong to one optimizer step and so go when it is replayed. */
const STEP_RECORDS = new Set(['step', 'eval', 'checkpoint']);

export class MetricsLog {
  /** Highest id read (or ever handed out, `idFloor`): the next record gets lastId + 1. */
  lastId: number;
  /** Bytes of the file read so far; always at a line boundary. */
  private offset = 0;
  private readonly listeners = new Set<RecordListener>();

  constructor(readonly file: string, idFloor = 0) {
    this.lastId = idFloor;
  }

  /**
   * Reads the whole file, dropping a torn last line (a writer killed mid-line), and
   * returns its records. Call once, before pumping.
   */
  load(): RunRecord[] {
    this.repairTail();
    const records = parseLines(existsSync(this.file) ? readFileSync(this.file, 'utf8') : '');
    for (const r of records) this.lastId = Math.max(this.lastId, r.id);
    this.offset = existsSync(this.file) ? statSync(this.file).size : 0;
    return records;
  }

  /** Reads the lines appended since the last call and hands each record to the listeners. */
  pump(): RunRecord[] {
    if (!existsSync(this.file)) return [];
    const size = statSync(this.file).size;
    if (size <= this.offset) return [];
    const buf = Buffer.alloc(size - this.offset);
    const fd = openSync(this.file, 'r');
    let got = 0;
    try {
      while (got < buf.length) {
        const n = readSync(fd, buf, got, buf.length - got, this.offset + got);
        if (n === 0) break;
        got += n;
      }
    } finally {
      closeSync(fd);
    }
    const end = buf.subarray(0, got).lastIndexOf(0x0a) + 1; // a partial line waits for its newline
    if (end === 0) return [];
    this.offset += end;
    const records = parseLines(buf.subarray(0, end).toString('utf8'));
    for (const r of records) {
      this.lastId = Math.max(this.lastId, r.id);
      for (const l of this.listeners) l(r);
    }
    return records;
  }

  /** Appends one server-side record (only while no training process writes this file). */
  append(e: RunEvent): RunRecord {
    this.repairTail();
    const r = { ...e, id: this.lastId + 1, time: Date.now() } as RunRecord;
    writeFileSync(this.file, JSON.stringify(r) + '\n', { flag: 'a' });
    this.pump();
    return r;
  }

  /**
   * Before a run continues from the checkpoint at `step`: drops the records of later
   * steps (they are trained again and come back with new ids), atomically. Returns how
   * many lines went.
   */
  dropStepsAfter(step: number): number {
    this.repairTail();
    if (!existsSync(this.file)) return 0;
    const lines = readFileSync(this.file, 'utf8').split('\n').filter((l) => l.trim());
    const kept = lines.filter((l) => {
      const r = parseLine(l);
      return !r || !(STEP_RECORDS.has(r.type) && (r as { step: number }).step > step);
    });
    if (kept.length === lines.length) return 0;
    writeAtomically(this.file, kept.map((l) => l + '\n').join(''));
    this.offset = statSync(this.file).size;
    return lines.length - kept.length;
  }

  subscribe(l: RecordListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /**
   * The records with id > afterId among those already pumped, read from the file, and a
   * subscription for every later one: nothing is missed or sent twice in between.
   */
  replayAndSubscribe(afterId: number, live: RecordListener): { history: Promise<RunRecord[]>; unsubscribe: () => void; flush: () => void } {
    const upTo = this.offset;
    const buffered: RunRecord[] = [];
    let replaying = true;
    const unsubscribe = this.subscribe((r) => (replaying ? buffered.push(r) : live(r)));
    const history = readPrefix(this.file, upTo).then((text) => parseLines(text).filter((r) => r.id > afterId));
    const flush = () => {
      replaying = false;
      for (const r of buffered.splice(0)) if (r.id > afterId) live(r);
    };
    return { history, unsubscribe, flush };
  }

  /** Cuts a torn last line off, so the next append starts on a line of its own. */
  private repairTail(): void {
    if (!existsSync(this.file)) return;
    const text = readFileSync(this.file);
    if (text.length === 0 || text[text.length - 1] === 0x0a) return;
    writeAtomically(this.file, text.subarray(0, text.lastIndexOf(0x0a) + 1));
    if (this.offset > text.lastIndexOf(0x0a) + 1) this.offset = text.lastIndexOf(0x0a) + 1;
  }
}

export function writeAtomically(file: string, data: string | Buffer): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

async function readPrefix(file: string, bytes: number): Promise<string> {
  if (bytes === 0) return '';
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    let got = 0;
    while (got < bytes) {
      const { bytesRead } = await fh.read(buf, got, bytes - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got).toString('utf8');
  } finally {
    await fh.close();
  }
}

function parseLine(line: string): RunRecord | undefined {
  try {
    const r = JSON.parse(line) as RunRecord;
    return typeof r === 'object' && r !== null && typeof r.id === 'number' && typeof r.type === 'string' ? r : undefined;
  } catch {
    return undefined;
  }
}

function parseLines(text: string): RunRecord[] {
  const out: RunRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const r = parseLine(line);
    if (r) out.push(r);
  }
  return out;
}

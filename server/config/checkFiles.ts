// The checks that look at the disk: the files a config names exist, the base folder is
// a model the engine can load, and the data's first lines are in data.format. (Target
// module names need no model: every Llama-family model has the seven projections, and
// parse() already refuses any other name.) Kept apart from parse() so that parsing stays pure and
// fast; these are cheap too (headers and first lines only, cached) but touch the disk.
import { closeSync, openSync, readdirSync, readSync, statSync, type Stats } from 'node:fs';
import { basename, dirname } from 'node:path';
import { DataError } from '../engine/train/types';
import { parseJsonl } from '../engine/train/formats';
import type { ConfigDiagnostic, DiagnosticCode, Severity } from './diagnostics';
import { modelFacts } from './modelFacts';
import type { ParseResult } from './parse';
import type { DataFormatName } from './schema';
import type { KeyOccurrence } from './source';
import { suggest } from './suggest';

export interface FileCheckOptions {
  /** How many non-blank lines at the top of each data file are checked against data.format. */
  dataLines?: number;
}

/** How much of a data file is read to find its first lines. */
const DATA_HEAD_BYTES = 64 * 1024;

export function checkFiles(parsed: ParseResult, options: FileCheckOptions = {}): ConfigDiagnostic[] {
  const { config, source } = parsed;
  const out: ConfigDiagnostic[] = [];
  // A key whose value is already wrong has its message; checking its file would only repeat it.
  const broken = new Set(parsed.diagnostics.filter((d) => d.severity === 'error').map((d) => d.data?.key));
  const usable = (path: string): KeyOccurrence | undefined => {
    const occ = source.first.get(path);
    return occ?.valueRange && !broken.has(path) ? occ : undefined;
  };
  const report = (occ: KeyOccurrence, severity: Severity, code: DiagnosticCode, message: string): void => {
    const [start, end] = occ.valueRange ?? occ.keyRange;
    out.push({ message, severity, code, range: source.lines.range(start, end), data: { key: occ.path } });
  };
  const written = (occ: KeyOccurrence) => source.text.slice(occ.valueRange![0], occ.valueRange![1]).replace(/^['"]|['"]$/g, '');

  const base = usable('model.base');
  if (base) {
    // A llama2.c checkpoint may be named by its own path, so a file is not wrong here.
    const problem = pathProblem(config.model.base, 'any');
    if (problem) {
      report(base, 'error', 'file-missing', `model.base: ${written(base)} ${problem}`);
    } else {
      const facts = modelFacts(config.model.base);
      if (!facts.ok) {
        report(base, 'error', 'model-unloadable', `model.base: ${written(base)} is not a loadable model: ${facts.problem}`);
      } else {
        const seqLen = usable('data.max_seq_len');
        const context = facts.config.maxPositionEmbeddings;
        if (seqLen && config.data.max_seq_len > context) {
          report(seqLen, 'warning', 'out-of-range', `data.max_seq_len ${config.data.max_seq_len} is longer than the model's context (${context} tokens)`);
        }
        const format = source.first.get('data.format');
        if (config.data.format === 'chat' && !facts.hasChatTemplate && format && !broken.has('data.format')) {
          report(format, 'error', 'conflict', `data.format: chat needs the model's chat template, and ${written(base)} has none (no chat_template in tokenizer_config.json): use alpaca or text`);
        }
      }
    }
  }

  const formatUsable = !broken.has('data.format');
  for (const path of ['data.train', 'data.validation'] as const) {
    const occ = usable(path);
    const file = path === 'data.train' ? config.data.train : config.data.validation;
    if (!occ || !file) continue;
    const missing = pathProblem(file, 'file');
    if (missing) {
      report(occ, 'error', 'file-missing', `${path}: ${written(occ)} ${missing}`);
      continue;
    }
    const bad = formatUsable ? dataProblem(file, config.data.format, options.dataLines ?? 5) : undefined;
    if (bad) report(occ, 'error', 'data-format', `${path}: ${written(occ)} ${bad}`);
  }

  const outputDir = usable('output.dir');
  if (outputDir && config.output.dir) {
    const s = statOrUndefined(config.output.dir);
    if (s && !s.isDirectory()) report(outputDir, 'error', 'file-missing', `output.dir: ${written(outputDir)} is a file; the run needs a folder there`);
  }
  return out;
}

/** Why `path` is not the kind of thing wanted, or undefined when it is. */
function pathProblem(path: string, want: 'file' | 'folder' | 'any'): string | undefined {
  const s = statOrUndefined(path);
  if (!s) {
    const near = nearbyName(path);
    return `does not exist${near ? `; did you mean ${near}?` : ''}`;
  }
  if (want === 'folder' && !s.isDirectory()) return 'is a file; expected a folder holding config.json or a llama2.c checkpoint';
  if (want === 'file' && s.isDirectory()) return 'is a folder; expected a JSONL file';
  // A device or pipe (/dev/stdin, say) could block the reader forever.
  if (want === 'file' && !s.isFile()) return 'is not a regular file';
  return undefined;
}

/** A sibling whose name is close to the missing one: the usual typo. */
function nearbyName(path: string): string | undefined {
  try {
    const names = readdirSync(dirname(path)).map((name) => ({ name }));
    return suggest(basename(path), names);
  } catch {
    return undefined;
  }
}

const dataCache = new Map<string, string | undefined>();

/** The first problem in the first `lines` non-blank lines, as `line N ...`, or undefined. */
function dataProblem(file: string, format: DataFormatName, lines: number): string | undefined {
  const s = statOrUndefined(file)!;
  const key = `${file}|${s.mtimeMs}|${s.size}|${format}|${lines}`;
  if (dataCache.has(key)) return dataCache.get(key);
  const problem = readDataProblem(file, s.size, format, lines);
  if (dataCache.size > 64) dataCache.clear();
  dataCache.set(key, problem);
  return problem;
}

function readDataProblem(file: string, size: number, format: DataFormatName, lines: number): string | undefined {
  let head: string;
  try {
    head = readHead(file, Math.min(size, DATA_HEAD_BYTES));
  } catch (e) {
    // Exists but cannot be read (EACCES, EIO...): a problem of the config's file, not of the checker.
    return unreadable(e);
  }
  if (head.trim() === '') return size > DATA_HEAD_BYTES ? `has ${DATA_HEAD_BYTES} blank bytes at its start` : 'is empty';
  // Only whole lines: the last one may be cut off by the read unless it is the file's end.
  let all = head.split('\n');
  if (size > DATA_HEAD_BYTES) all = all.slice(0, -1);
  const kept: string[] = [];
  let nonBlank = 0;
  for (const line of all) {
    if (nonBlank === lines) break;
    kept.push(line);
    if (line.trim() !== '') nonBlank++;
  }
  try {
    parseJsonl(kept.join('\n'), file, format);
    return undefined;
  } catch (e) {
    if (e instanceof DataError && e.line !== undefined) return `line ${e.line} does not match format ${format}: ${e.reason}`;
    return (e as Error).message;
  }
}

function readHead(file: string, bytes: number): string {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    const n = readSync(fd, buf, 0, bytes, 0);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** `cannot be read (EACCES: permission denied)`, from a failed open or read. */
export function unreadable(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const why = err.code === 'EACCES' || err.code === 'EPERM' ? `${err.code}: permission denied` : err.code ?? err.message;
  return `cannot be read (${why})`;
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

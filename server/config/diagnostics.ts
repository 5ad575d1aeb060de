// The problems found in a `.qlora` file, in a form of our own rather than LSP's: the
// language server, the training server's 400 answers and `qlora train` all show the
// same messages, and only the first of them speaks LSP.

/** Zero-based line and UTF-16 column, as LSP counts them (and as JS strings index). */
export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

export type Severity = 'error' | 'warning' | 'info';

/** What kind of problem it is; quick fixes and tests key on these. */
export type DiagnosticCode =
  | 'yaml-syntax'
  | 'not-a-mapping'
  | 'unknown-key'
  | 'misplaced-key'
  | 'duplicate-key'
  | 'missing-key'
  | 'no-value'
  | 'wrong-type'
  | 'out-of-range'
  | 'unknown-value'
  | 'suspicious-value'
  | 'conflict'
  | 'file-missing'
  | 'model-unloadable'
  | 'data-format';

export interface TextEdit {
  range: Range;
  newText: string;
}

/** A quick fix: a title for the menu and the edits that apply it. */
export interface Fix {
  title: string;
  edits: TextEdit[];
}

export interface ConfigDiagnostic {
  message: string;
  severity: Severity;
  range: Range;
  code?: DiagnosticCode;
  data?: {
    /** The key the problem is about, e.g. `lora.r`. */
    key?: string;
    /** The "did you mean" candidate for an unknown key or value. */
    suggestion?: string;
    fixes?: Fix[];
  };
}

export function hasErrors(diagnostics: readonly ConfigDiagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

/**
 * `file:line:col: message` with one-based line and column, the form compilers print and
 * terminals link; warnings and infos say so, errors go unlabelled.
 */
export function formatDiagnostic(file: string, d: ConfigDiagnostic): string {
  const where = `${file}:${d.range.start.line + 1}:${d.range.start.character + 1}`;
  const label = d.severity === 'error' ? '' : `${d.severity}: `;
  return `${where}: ${label}${d.message}`;
}

/** In reading order; at one place, errors before warnings. */
export function sortDiagnostics(diagnostics: ConfigDiagnostic[]): ConfigDiagnostic[] {
  const rank: Record<Severity, number> = { error: 0, warning: 1, info: 2 };
  return diagnostics.sort(
    (a, b) =>
      a.range.start.line - b.range.start.line ||
      a.range.start.character - b.range.start.character ||
      rank[a.severity] - rank[b.severity],
  );
}

// Our own diagnostic and edit types -> LSP's. The config module stays free of LSP because
// the training server and the CLI import it too.
import { DiagnosticSeverity, type Diagnostic, type Range } from 'vscode-languageserver';
import type { ConfigDiagnostic, Range as ConfigRange, Severity } from '../../server/config';

const SEVERITY: Record<Severity, DiagnosticSeverity> = {
  error: DiagnosticSeverity.Error,
  warning: DiagnosticSeverity.Warning,
  info: DiagnosticSeverity.Information,
};

export function toLspDiagnostic(d: ConfigDiagnostic): Diagnostic {
  return {
    range: toLspRange(d.range),
    severity: SEVERITY[d.severity],
    source: 'qlora',
    message: d.message,
    ...(d.code ? { code: d.code } : {}),
    ...(d.data ? { data: d.data } : {}),
  };
}

export function toLspRange(r: ConfigRange): Range {
  return { start: { ...r.start }, end: { ...r.end } };
}

// What keeps the language server serving when a part of it fails: a request handler that
// throws answers empty (and the failure is logged), and a check that throws becomes a
// diagnostic on the document. One broken file must not cost the editor every other one.
import { DiagnosticSeverity, type Diagnostic } from 'vscode-languageserver';

/**
 * Wraps request handlers: `handler` runs, and any exception it throws is logged once
 * (with the request's name) and answered with `empty`.
 */
export function guarded(log: (message: string) => void) {
  return <P, R>(what: string, empty: R, handler: (params: P) => R) =>
    (params: P): R => {
      try {
        return handler(params);
      } catch (e) {
        log(`qlora: ${what} failed: ${(e as Error)?.stack ?? String(e)}`);
        return empty;
      }
    };
}

/** The diagnostic shown in place of a check that could not run. */
export function internalDiagnostic(e: unknown): Diagnostic {
  const why = e instanceof Error ? e.message : String(e);
  return {
    range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } },
    severity: DiagnosticSeverity.Error,
    source: 'qlora',
    code: 'internal',
    message: `qlora could not check this file: ${why}`,
  };
}

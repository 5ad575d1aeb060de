// An HTTP answer other than 2xx, thrown by the run manager and the routes alike and
// turned into an ErrorResponse (or, for a bad config, its diagnostics) in one place.
import type { ConfigDiagnostic, ErrorCode } from '../protocol';

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: ErrorCode, message: string, readonly diagnostics?: ConfigDiagnostic[]) {
    super(message);
    this.name = 'ApiError';
  }
}

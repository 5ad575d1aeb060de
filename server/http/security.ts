// Who may talk to the server: a request must name the loopback address and the server's
// port in Host (a web page that rebinds a DNS name to 127.0.0.1 sends its own name) and
// carry the bearer token the server was started with. Everything else gets 403 or 401
// and nothing more; both checks run before any body is read or route is matched.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { ErrorResponse } from '../protocol';

export function refuse(res: Response, status: number, body: ErrorResponse): void {
  res.status(status).json(body);
}

export function requireLoopbackAndToken(token: string, port: () => number) {
  const expected = digest(token);
  return (req: Request, res: Response, next: NextFunction): void => {
    const host = (req.headers.host ?? '').toLowerCase();
    const p = port();
    if (host !== `127.0.0.1:${p}` && host !== `localhost:${p}`) {
      refuse(res, 403, { error: 'forbidden: Host must be 127.0.0.1 or localhost with the server\'s port', code: 'forbidden-host' });
      return;
    }
    const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    if (!m || !timingSafeEqual(digest(m[1]), expected)) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      refuse(res, 401, { error: 'unauthorized: a valid bearer token is required', code: 'unauthorized' });
      return;
    }
    next();
  };
}

/** Equal-length digests, so the comparison takes the same time whatever was sent. */
function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

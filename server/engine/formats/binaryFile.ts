// Positioned reads and all-or-nothing writes for model files. Tensors are read one at a
// time (never the whole file at once: a checkpoint can exceed Node's largest Buffer), and
// every output is written beside its destination and renamed into place, so a crash or a
// full disk never leaves a half-written file under the real name.
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ModelFormatError } from './types';

// Model files are little-endian; typed arrays use the host's byte order.
if (endianness() !== 'LE') throw new Error('model files can only be read on a little-endian host');

/** Largest single read: Node's fs calls take at most 2 GiB - 1 bytes. */
const MAX_IO_CHUNK = 1 << 30;

/** Reads exactly `into.byteLength` bytes at `position`, or throws naming the file. */
export function readExactlyAt(fd: number, into: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < into.byteLength) {
    const want = Math.min(MAX_IO_CHUNK, into.byteLength - done);
    const n = readSync(fd, into, done, want, position + done);
    if (n === 0) {
      throw new ModelFormatError(file, `unexpected end of file at byte ${position + done} (needed ${into.byteLength} bytes from byte ${position})`);
    }
    done += n;
  }
}

export function readBytesAt(fd: number, position: number, length: number, file: string): Uint8Array {
  const bytes = new Uint8Array(length);
  readExactlyAt(fd, bytes, position, file);
  return bytes;
}

/** `count` little-endian float32 values at `position`, read straight into their array. */
export function readFloat32At(fd: number, position: number, count: number, file: string): Float32Array {
  const out = new Float32Array(count);
  readExactlyAt(fd, new Uint8Array(out.buffer), position, file);
  return out;
}

export function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) {
    done += writeSync(fd, bytes, done, Math.min(MAX_IO_CHUNK, bytes.byteLength - done));
  }
}

/** A name beside `path` (same folder, so that rename is atomic) that nothing else uses. */
export function tempPathBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Runs `write` on a temporary file, then renames it to `file`; on failure nothing is left behind. */
export function writeFileAtomic(file: string, write: (fd: number) => void): void {
  const temp = tempPathBeside(file);
  const fd = openSync(temp, 'w');
  try {
    write(fd);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(temp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(temp, file);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
}

/** A folder (or file) that exists and is not an empty folder. */
export function isNonEmptyDir(path: string): boolean {
  return existsSync(path) && (!statSync(path).isDirectory() || readdirSync(path).length > 0);
}

/** Moves `from` to `to`; an existing `to` is moved aside first and removed only once `from` is in place. */
export function replaceDir(from: string, to: string): void {
  syncDir(from);
  if (!existsSync(to)) {
    renameSync(from, to);
    return;
  }
  const old = `${from}.old`;
  renameSync(to, old);
  try {
    renameSync(from, to);
  } catch (err) {
    renameSync(old, to);
    throw err;
  }
  rmSync(old, { recursive: true, force: true });
}

/** Flushes a folder's entries before it is renamed into place; some platforms cannot open a folder, which is fine. */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // best effort
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

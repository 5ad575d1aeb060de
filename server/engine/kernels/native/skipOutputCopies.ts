// Runs a session without onnxruntime-node's copies of its outputs.
//
// The binding's run() writes into the output buffers we pass (views on the wasm heap),
// and then, for its return value, copies every output once more into a fresh ArrayBuffer
// that nobody reads: about 28 MB a training step on the benchmark shape, the memcpy, the
// calloc behind it, and the collector's work on that much external memory (a scavenge
// nearly every step). It builds that return value one output at a time, in the order of
// the fetches, and throws at the first output that is not a tensor ("Non tensor type is
// temporarily not supported"), by which point the session has run and written every
// preallocated output. So each graph gets one extra output ahead of its own, an empty
// sequence (SequenceEmpty, nothing computed), and a call that fetches it first ends in
// that error with its outputs written and nothing copied. Measured: a (256 x 512) x
// (512 x 1376) product called back to back, 0.9-1.1 ms a call against 4.6-5.8 ms with the
// copies; the error itself costs about 13 us, so calls whose outputs are small keep the
// plain path (then the copy is cheaper than the error).
//
// This leans on the binding's behaviour, so start-up checks it (probe): the error must
// come, with exactly the message recorded there, and the output must hold the result.
// Anything else (a later binding that returns sequences, or stops copying) and the
// provider keeps plain runs. A run that fails for any other reason throws its own message.
import { encodeModel, FLOAT, type GraphSpec } from './onnxGraph';
import type { OrtSession, OrtTensorCtor } from './ortBinding';

export const SKIP_COPIES_OUTPUT = 'qloraSkipOutputCopies';

/** Output bytes below which the copy costs less than the error. */
export const SKIP_COPIES_MIN_BYTES = 128 << 10;

/** The graph with the empty sequence as its first output (nothing is computed for it; plain runs do not fetch it). */
export function withSkipCopiesOutput(g: GraphSpec): GraphSpec {
  return {
    nodes: [{ opType: 'SequenceEmpty', inputs: [], outputs: [SKIP_COPIES_OUTPUT], attrs: [{ name: 'dtype', i: FLOAT }] }, ...g.nodes],
    inputs: g.inputs,
    outputs: [{ name: SKIP_COPIES_OUTPUT, elemType: FLOAT, dims: [], sequence: true }, ...g.outputs],
  };
}

/**
 * Runs `session` (built from withSkipCopiesOutput) with its outputs preallocated in
 * `fetches`; `message` is what probeSkipCopies() returned.
 */
export function runSkippingCopies(session: OrtSession, feeds: Record<string, unknown>, fetches: Record<string, unknown>, message: string): void {
  // The sequence first: the binding stops there.
  const all: Record<string, unknown> = { [SKIP_COPIES_OUTPUT]: null, ...fetches };
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0; // the expected error's stack is never read
  try {
    session.run(feeds, all, {});
  } catch (e) {
    if ((e as Error).message !== message) throw e;
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * Whether this binding ends a run at the sequence with the outputs written: the error's
 * exact message if so, undefined if not (then plain runs). Never throws.
 */
export function probeSkipCopies(newSession: () => OrtSession, Tensor: OrtTensorCtor): string | undefined {
  try {
    const s = newSession();
    const v = (name: string) => ({ name, elemType: FLOAT, dims: ['n'] });
    const bytes = encodeModel(withSkipCopiesOutput({ nodes: [{ opType: 'Mul', inputs: ['x', 'x'], outputs: ['y'] }], inputs: [v('x')], outputs: [v('y')] }));
    s.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, { intraOpNumThreads: 1, interOpNumThreads: 1 });
    const x = Float32Array.from([1, 2, 3]), y = new Float32Array(3);
    try {
      s.run({ x: new Tensor('float32', x, [3]) }, { [SKIP_COPIES_OUTPUT]: null, y: new Tensor('float32', y, [3]) }, {});
    } catch (e) {
      const message = (e as Error).message;
      const written = y[0] === 1 && y[1] === 4 && y[2] === 9;
      return written && /non tensor/i.test(message) ? message : undefined;
    }
    return undefined;
  } catch {
    return undefined;
  }
}

// The Node.js flags a training process runs with: a young generation large enough for one
// training step's short-lived objects.
//
// Why: a step allocates its tensors' JavaScript objects, the autograd tape and (with the
// native provider) one ArrayBuffer per native output, tens of MB a step, almost all dead by
// the step's end. With V8's default 16 MB semi-space, what is still alive at each scavenge
// (the step's saved activations, the tape) was promoted, old space filled, and a full
// mark-compact ran about once a step, its marking on V8's worker threads: on the benchmark
// shape (test/bench/engine.bench.ts), 26 mark-compacts in 23 steps and ~49 ms of GC-thread
// CPU a step, which on a 2-core machine took turns with onnxruntime's second thread. With a
// 64 MB semi-space: 4 mark-compacts, ~10 ms, the step's CPU time 217-239 -> 177-197 ms;
// resident memory +10-25 MB. V8 reads the size when the heap is made, so it must be a flag
// at start-up (v8.setFlagsFromString later changed nothing, measured).
//
// Used by the server's training process (http/trainingProcess.ts), the `qlora` bin's
// shebang and npm scripts (esbuild.mjs, package.json) and the benchmarks (test/bench/run.mjs);
// test/server/trainingNodeFlags.test.ts checks that those copies say the same.
export const TRAINING_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];

/** `execArgv` plus the training flags, where it does not already set them itself. */
export function withTrainingFlags(execArgv: readonly string[]): string[] {
  const name = (flag: string) => flag.split('=')[0].replace(/_/g, '-');
  const set = new Set(execArgv.map(name));
  return [...execArgv, ...TRAINING_NODE_FLAGS.filter((f) => !set.has(name(f)))];
}

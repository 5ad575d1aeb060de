// glibc's malloc, primed for onnxruntime-node's output copies. The binding copies every
// output of a run into a fresh ArrayBuffer (calloc), and the collector frees it later:
// tens of MB a training step, in buffers of 0.1 to a few MB. glibc serves a request above
// its mmap threshold (128 KB at start) with a fresh mapping, and returns the top of its
// heap to the system once more than its trim threshold lies free there, so the same
// memory was faulted in again and again: 1,000 to 4,000 page faults a step on the
// benchmark shape, and a fifth to a quarter of the step's time on this project's
// (virtualized) machines. glibc raises both thresholds by itself when a mapped block is
// freed (to that block's size, at most 32 MB, and twice that for trimming); the
// MALLOC_MMAP_THRESHOLD_ variables would set them, but only before the process starts.
// So the provider frees such a block once at start: one run of a graph whose one
// intermediate, allocated and freed by ORT without its arena, is just under 32 MB. From
// then on the copies reuse heap memory (150 to 250 faults a step), and the heap keeps at
// most 64 MB free. Elsewhere (macOS, Windows, musl) it is one short-lived allocation.
// Since runs with large outputs skip those copies (skipOutputCopies.ts), this matters
// where the binding does not allow that, and for the small outputs that are still copied.
import { encodeModel, FLOAT, INT64 } from './onnxGraph';
import type { OrtSession, OrtTensorCtor } from './ortBinding';

const PRIMER_FLOATS = (31 << 20) / 4; // just under glibc's 32 MB ceiling for the dynamic threshold

/** Best effort: a failure here changes only speed, so it is swallowed. */
export function primeMalloc(newSession: () => OrtSession, Tensor: OrtTensorCtor): void {
  try {
    const s = newSession();
    const bytes = encodeModel({
      nodes: [
        { opType: 'ConstantOfShape', inputs: ['shape'], outputs: ['zeros'] },
        { opType: 'ReduceMax', inputs: ['zeros'], outputs: ['y'], attrs: [{ name: 'keepdims', i: 0 }] },
      ],
      inputs: [{ name: 'shape', elemType: INT64, dims: [1] }],
      outputs: [{ name: 'y', elemType: FLOAT, dims: [] }],
    });
    s.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength,
      { intraOpNumThreads: 1, interOpNumThreads: 1, enableCpuMemArena: false, enableMemPattern: false, graphOptimizationLevel: 'disabled' });
    s.run({ shape: new Tensor('int64', BigInt64Array.from([BigInt(PRIMER_FLOATS)]), [1]) }, { y: null }, {});
  } catch {
    // Slower copies, same results.
  }
}

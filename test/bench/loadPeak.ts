// Load and quantize one model folder on the wasm backend, then print one JSON line: peak
// RSS (VmHWM) of the load, the wasm heap after it, the plan's load peak, and the time.
// Usage: tsx test/bench/loadPeak.ts MODEL_DIR   (used for the 1B/3B figures; not part of npm test)
import { readFileSync } from 'node:fs';
import { initBackend } from '../../server/engine/backend';
import { loadModel } from '../../server/engine/formats/modelFolder';
import { planMemory } from '../../server/engine/memory/plan';
import { LINEAR_MODULES } from '../../server/engine/model/config';
import { LlamaModel } from '../../server/engine/model/llama';
import { tf } from '../../server/engine/tf';

const vmHwm = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
(async () => {
  await initBackend('wasm');
  const atInit = process.memoryUsage().rss;
  const t0 = Date.now();
  const loaded = await loadModel(process.argv[2]);
  const model = LlamaModel.fromLoaded(loaded);
  const ms = Date.now() - t0;
  const heap = (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length;
  const plan = planMemory({
    model: loaded.config, quant: { quantization: 'nf4', blockSize: 64, doubleQuant: true }, lora: { r: 16, targetModules: LINEAR_MODULES },
    seqLen: 256, microBatch: 1, gradientCheckpointing: true, backend: 'wasm',
  });
  console.log(JSON.stringify({ atInit, loadPeak: vmHwm(), rssAfter: process.memoryUsage().rss, wasmHeap: heap, resident: model.residentBytes(), planLoadPeak: plan.loadPeak, ms, cpuSeconds: process.cpuUsage().user / 1e6 }));
})();

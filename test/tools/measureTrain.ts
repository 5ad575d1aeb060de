// Trains a .qlora config through the real trainer and prints, per optimizer step, the CPU
// seconds it took, tokens per CPU second, the backend's tensor bytes, and at the end the
// wasm heap's size (it only grows, so it is its high-water mark) and the process's peak
// RSS, beside model/memory.ts's activation plan for the shape. For the machine-shared
// figures of issue 19: CPU time, not wall time, is what to compare here.
//   node --import tsx test/tools/measureTrain.ts RUN.qlora [--max-steps N]
import { resolve } from 'node:path';
import { tf } from '../../server/engine/tf';
import { loadConfigFile } from '../../server/config/load';
import { train } from '../../server/engine/train/trainer';
import { readModelConfig } from '../../server/engine/formats/modelFolder';
import { activationPlan, frozenTableBytes } from '../../server/engine/model/memory';

const MB = 1024 * 1024;

function wasmHeapBytes(): number | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return b.wasm?.HEAPU8?.buffer.byteLength;
}

async function main(): Promise<void> {
  const file = resolve(process.argv[2] ?? '');
  const i = process.argv.indexOf('--max-steps');
  const maxSteps = i > 0 ? Number(process.argv[i + 1]) : undefined;
  const { config, diagnostics } = loadConfigFile(file);
  const errors = diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) throw new Error(`${file}: ${errors.map((d) => d.message).join('; ')}`);
  const model = readModelConfig(config.model.base);
  const plan = activationPlan(model, {
    seqLen: config.data.max_seq_len, microBatch: config.training.micro_batch_size,
    gradientCheckpointing: config.training.gradient_checkpointing,
  });
  const tables = frozenTableBytes(model); // bf16/fp16 checkpoints
  console.log(`plan: activations ${(plan.peak / MB).toFixed(0)} MiB at T ${config.data.max_seq_len} (held ${(plan.held / MB).toFixed(0)}, ` +
    `block ${(plan.blockPeak / MB).toFixed(0)}, loss ${(plan.lossPeak / MB).toFixed(0)}); host tables ${((tables.embedding + tables.head) / MB).toFixed(0)} MiB`);
  let cpu = process.cpuUsage();
  let wall = performance.now();
  await train(config, {
    maxSteps,
    onEvent: (e) => {
      if (e.type === 'start') { cpu = process.cpuUsage(); wall = performance.now(); }
      if (e.type !== 'step') return;
      const used = process.cpuUsage(cpu);
      const cpuS = (used.user + used.system) / 1e6;
      const wallS = (performance.now() - wall) / 1000;
      const tokens = e.tokensPerSec * wallS; // the step's real tokens (tokensPerSec is per wall second)
      console.log(`step ${e.step}: loss ${e.loss.toFixed(4)}, ${cpuS.toFixed(1)} CPU s (${wallS.toFixed(1)} s wall), ` +
        `~${(tokens / cpuS).toFixed(1)} tokens per CPU s, tensors ${(e.memoryBytes / MB).toFixed(0)} MiB, wasm heap ${((wasmHeapBytes() ?? 0) / MB).toFixed(0)} MiB`);
      cpu = process.cpuUsage();
      wall = performance.now();
    },
  });
  const heap = wasmHeapBytes();
  console.log(`peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB; wasm heap high-water ${heap === undefined ? 'n/a' : (heap / MB).toFixed(0) + ' MiB'}`);
}

main().catch((e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });

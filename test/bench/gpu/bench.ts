// The GPU benchmark's Node side, one command per job; each prints one JSON object on
// stdout (progress on stderr). pack.sh bundles it to bench.cjs for the GPU machine, where
// no TypeScript runs; here it runs with tsx. See README.md beside it.
//   make-model DIR [--tiny] [--layers N] [--batch B] [--seq T] [--steps S]
//   agree DIR --cli dist/cli.js      20 steps of `qlora train` on webgpu and on wasm, losses compared
//   engine DIR --cli dist/cli.js     the timed `qlora train` run on webgpu
//   ceiling [--backend webgpu]       float32 matMul GFLOP/s on that backend
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend, type BackendChoice } from '../../../server/engine/backend';
import { BENCH_MODEL, SMOKE_MODEL, parameterCount, writeBenchFolder, type BenchSpec, type RunShape } from './benchModel';
import { matmulCeiling } from './ceiling';
import { lossAgreement, runTrain, stepFlops, summarize } from './trainRun';

// Float32 on both sides, the same kernels up to summation order: a relative difference
// of 1e-4 is hundreds of float32 ulps, far above reordering noise and far below a bug.
const LOSS_TOLERANCE = 1e-4;

async function main(argv: string[]): Promise<object> {
  const [job, ...rest] = argv;
  const { values: v, positionals } = parseArgs({
    args: rest, allowPositionals: true, options: {
      tiny: { type: 'boolean' }, layers: { type: 'string' }, batch: { type: 'string' }, seq: { type: 'string' },
      steps: { type: 'string' }, cli: { type: 'string' }, backend: { type: 'string' },
    },
  });
  const dir = positionals[0] ? resolve(positionals[0]) : '';
  const cli = resolve(v.cli ?? 'dist/cli.js');
  const specOf = (): { spec: BenchSpec; bench: RunShape; agree: RunShape } =>
    JSON.parse(readFileSync(join(dir, 'spec.json'), 'utf8'));
  switch (job) {
    case 'make-model': {
      const base = v.tiny ? SMOKE_MODEL : BENCH_MODEL;
      const spec = { ...base, nLayers: Number(v.layers ?? base.nLayers) };
      const bench = { batch: Number(v.batch ?? 8), seq: Number(v.seq ?? (v.tiny ? 64 : 512)), steps: Number(v.steps ?? 200) };
      const agree = { batch: 1, seq: v.tiny ? 32 : 64, steps: 20 };
      writeBenchFolder(dir, spec, bench, agree);
      return { dir, spec, params: parameterCount(spec), bench, agree };
    }
    case 'agree': {
      const gpu = await runTrain(cli, join(dir, 'agree-webgpu.qlora'));
      const cpu = await runTrain(cli, join(dir, 'agree-wasm.qlora'));
      return { webgpu: gpu.start.device, wasm: cpu.start.device, ...lossAgreement(gpu, cpu, LOSS_TOLERANCE) };
    }
    case 'engine': {
      const { spec, bench } = specOf();
      const run = summarize(await runTrain(cli, join(dir, 'bench.qlora')));
      const flops = stepFlops(spec, bench.batch, bench.seq, 16);
      return { ...bench, ...run, params: parameterCount(spec), stepTflop: flops / 1e12, achievedTflops: flops / (run.msPerStep / 1000) / 1e12 };
    }
    case 'ceiling': {
      const info = await initBackend((v.backend ?? 'webgpu') as BackendChoice);
      return { device: info.device, float32Gflops: await matmulCeiling() };
    }
    default:
      throw new Error(`unknown job '${job}': make-model, agree, engine or ceiling`);
  }
}

main(process.argv.slice(2)).then(
  (result) => { process.stdout.write(JSON.stringify(result) + '\n'); process.exit(0); },
  (e: Error) => { process.stderr.write(`bench: ${e.message}\n`); process.exit(1); },
);

// One real-shape training run in its own process, for realShapes.bench.ts: a few optimizer
// steps of `qlora train`'s engine on a model folder (make-model.ts), then one JSON line with
// what the kernel and the backend measured: peak RSS (VmHWM) after loading and at the end,
// the wasm heap's size (it never shrinks, so its size is its high-water mark), seconds per
// step and tokens/s. Usage: tsx realShapeRun.ts MODEL_DIR SEQ STEPS WORK_DIR [BACKEND]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfigFile } from '../../server/config/load';
import { configText } from '../../server/config/write';
import { train } from '../../server/engine/train/trainer';
import { tf } from '../../server/engine/tf';
import { HuggingFaceTokenizer } from '../../server/engine/tokenizer/huggingface';

const [modelDir, seqArg, stepsArg, work, backend = 'wasm'] = process.argv.slice(2);
const seq = Number(seqArg), steps = Number(stepsArg);

/** The kernel's peak resident set size of this process, in bytes. */
function vmHwm(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

function wasmHeapBytes(): number | null {
  const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return b.wasm?.HEAPU8 ? b.wasm.HEAPU8.length : null;
}

// Plain English-like text, long enough that every example fills max_seq_len.
const words = 'the a little girl found old red box under tree and she opened it to see what was inside when suddenly bright light came out of'.split(' ');
let x = 12345;
const word = () => words[(x = (Math.imul(x, 1103515245) + 12345) >>> 0) % words.length];
mkdirSync(work, { recursive: true });
// Each example is cut to exactly max_seq_len tokens with the model's own tokenizer (BOS included).
const tokenizer = HuggingFaceTokenizer.fromFolder(modelDir, JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')));
const fitted = (all: string[]): string => {
  let lo = 1, hi = all.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (tokenizer.encode(all.slice(0, mid).join(' '), { bos: true }).length <= seq) lo = mid;
    else hi = mid - 1;
  }
  return all.slice(0, lo).join(' ');
};
const lines = Array.from({ length: 24 }, () => JSON.stringify({ text: fitted(Array.from({ length: seq * 2 }, word)) }));
writeFileSync(join(work, 'train.jsonl'), lines.join('\n') + '\n');
const configFile = join(work, 'run.qlora');
writeFileSync(configFile, configText({
  model: { base: modelDir, quantization: 'nf4' },
  lora: { r: 16, alpha: 32, dropout: 0.05, target_modules: 'all-linear' },
  data: { train: './train.jsonl', format: 'text', validation_split: 0, max_seq_len: seq },
  training: { max_steps: steps, micro_batch_size: 1, gradient_accumulation_steps: 1, learning_rate: 2e-4, warmup_steps: 0, eval_every: 0, save_every: 0, backend },
  output: { dir: './out' },
}));

// The peak of the bytes TensorFlow.js holds in tensors (what the plan's heap parts model),
// tracked at every tensor registration: the wasm heap's size also counts the allocator's slack.
const engine = tf.engine() as unknown as { trackTensor: (...a: unknown[]) => unknown; state: { numBytes: number } };
const register = engine.trackTensor.bind(engine);
let tensorPeak = 0;
engine.trackTensor = (...a: unknown[]) => {
  const r = register(...a);
  if (engine.state.numBytes > tensorPeak) tensorPeak = engine.state.numBytes;
  return r;
};
const rssNow = () => process.memoryUsage().rss;

(async () => {
  const { config } = loadConfigFile(configFile);
  const started = Date.now();
  let loadPeak = 0, loadMs = 0;
  const stepMs: number[] = [];
  let last = 0, tokensPerSec = 0, error: string | undefined;
  let atStart: { rss: number; wasmHeap: number | null; tensorBytes: number } | undefined;
  const atInit = rssNow();
  try {
    await train(config, {
      onEvent: (e) => {
        if (e.type === 'start') {
          loadPeak = vmHwm(); loadMs = Date.now() - started; last = Date.now();
          atStart = { rss: rssNow(), wasmHeap: wasmHeapBytes(), tensorBytes: engine.state.numBytes };
        }
        if (e.type === 'step') { stepMs.push(Date.now() - last); last = Date.now(); tokensPerSec = e.tokensPerSec; }
        if (e.type === 'error') error = e.message;
      },
    });
  } catch (err) {
    error = (err as Error).message;
  }
  // The first step pays for first-touch of fresh memory and kernel setup: report the rest.
  const steady = stepMs.length > 1 ? stepMs.slice(1) : stepMs;
  const secondsPerStep = steady.length ? steady.reduce((a, b) => a + b, 0) / steady.length / 1000 : null;
  console.log(JSON.stringify({
    ok: error === undefined, error, steps: stepMs.length, loadMs, loadPeak, atInit, atStart, tensorPeak, peakRss: vmHwm(), wasmHeap: wasmHeapBytes(),
    secondsPerStep, tokensPerSec: secondsPerStep ? seq / secondsPerStep : tokensPerSec, cpuSeconds: process.cpuUsage().user / 1e6,
  }));
})();

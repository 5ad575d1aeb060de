// llama.cpp as an independent reader of the GGUF files we write, through node-llama-cpp (an
// optional dependency: `npm i -D -E node-llama-cpp@3.21.1`; its prebuilt CPU binary needs no
// network). It runs in a child process because a malformed GGUF can abort llama.cpp, and an
// abort must not take the caller down. One request, one JSON answer on stdout.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type LlamaCppOp =
  /** The ids llama.cpp's tokenizer gives `text` (no BOS, special tokens not parsed). */
  | { op: 'tokenize'; text: string }
  /** Greedy continuation of `prompt` (ids), `n` tokens or until end of generation. */
  | { op: 'greedy'; prompt: number[]; n: number }
  /** log p(ids[t] | ids[<t]) for t = 1..len-1 in one window. */
  | { op: 'logprobs'; ids: number[] };

export interface LlamaCppRequest {
  model: string;
  lora?: string;
  contextSize?: number;
  /** KV cache type; default F32 (llama.cpp's own default is F16). */
  kvCacheType?: 'F32' | 'F16';
  /** Default off: llama.cpp's CPU flash attention computes in float16 and moves log-probabilities by ~1e-3. */
  flashAttention?: boolean;
  ops: LlamaCppOp[];
}

export type LlamaCppResult = number[];

/** The entry file of node-llama-cpp, or undefined where it is not installed. */
export function findNodeLlamaCpp(from: string = __filename): string | undefined {
  try {
    return createRequire(from).resolve('node-llama-cpp'); // its "node" export: dist/index.js
  } catch {
    return undefined;
  }
}

// The child: plain ESM JavaScript (node-llama-cpp is ESM-only), reading the request from stdin.
const CHILD = String.raw`
const input = await new Promise((ok) => { let s = ''; process.stdin.on('data', (d) => (s += d)); process.stdin.on('end', () => ok(s)); });
const req = JSON.parse(input);
const { getLlama, LlamaLogLevel } = await import(process.env.QLORA_NODE_LLAMA_CPP);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, logger: (level, message) => process.stderr.write(message) });
const model = await llama.loadModel({ modelPath: req.model, gpuLayers: 0 });
// float32 attention (no flash attention, an F32 KV cache): llama.cpp's defaults compute it in float16,
// which moves log-probabilities by ~1e-3 and flips near-ties in a greedy comparison.
const context = await model.createContext({ contextSize: req.contextSize ?? 512, batchSize: req.contextSize ?? 512, threads: 1, flashAttention: req.flashAttention ?? false,
  experimentalKvCacheKeyType: req.kvCacheType ?? 'F32', experimentalKvCacheValueType: req.kvCacheType ?? 'F32',
  ...(req.lora ? { lora: { adapters: [{ filePath: req.lora }] } } : {}) });
const sequence = context.getSequence();
const results = [];
for (const op of req.ops) {
  await sequence.clearHistory();
  if (op.op === 'tokenize') {
    results.push(Array.from(model.tokenize(op.text, false)));
  } else if (op.op === 'greedy') {
    const out = [];
    if (op.n > 0) {
      for await (const token of sequence.evaluate(op.prompt, { temperature: 0, yieldEogToken: true })) {
        out.push(token);
        if (out.length >= op.n || model.isEogToken(token)) break;
      }
    }
    results.push(out);
  } else if (op.op === 'logprobs') {
    const items = op.ids.slice(0, -1).map((t) => [t, { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }]);
    const res = await sequence.controlledEvaluate(items);
    results.push(res.map((r, i) => Math.log(r?.next?.probabilities?.get(op.ids[i + 1]) ?? 0)));
  }
}
await context.dispose();
await model.dispose();
await llama.dispose();
process.stdout.write(JSON.stringify(results) + '\n');
`;

/** Runs the request in a child process; rejects with llama.cpp's own words on failure or abort. */
export function runLlamaCpp(req: LlamaCppRequest, opts: { timeoutMs?: number } = {}): Promise<LlamaCppResult[]> {
  const entry = findNodeLlamaCpp();
  if (!entry) return Promise.reject(new Error('llama.cpp is not available: install node-llama-cpp (npm i -D -E node-llama-cpp@3.21.1)'));
  return new Promise((resolvePromise, reject) => {
    // A file, not `node -e`: node-llama-cpp tests its binary in a fork that inherits execArgv.
    const dir = mkdtempSync(join(tmpdir(), 'qlora-llamacpp-'));
    const script = join(dir, 'client.mjs');
    writeFileSync(script, CHILD);
    const cleanup = () => rmSync(dir, { recursive: true, force: true });
    const child = spawn(process.execPath, [script], {
      env: { ...process.env, QLORA_NODE_LLAMA_CPP: pathToFileURL(entry).href }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('error', (err) => { clearTimeout(timer); cleanup(); reject(err); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      cleanup();
      if (code === 0) {
        try {
          resolvePromise(JSON.parse(stdout.trim().split('\n').pop()!));
          return;
        } catch { /* fall through */ }
      }
      reject(new Error(`llama.cpp failed on ${req.model}${req.lora ? ` with ${req.lora}` : ''} (${signal ?? `exit ${code}`}): ${stderr.trim().split('\n').slice(-5).join(' | ') || stdout.trim()}`));
    });
    child.stdin.end(JSON.stringify(req));
  });
}

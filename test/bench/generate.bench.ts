// Generation speed with and without the KV cache (greedy, NF4 + double quant, wasm): on
// stories260K (when ../shared has it) and on a random-weight model of SmolLM2-135M's shape
// (vocab 49152, hidden 576, 30 layers, 9 heads / 3 kv heads, tied), made in memory. Prints
// tokens per wall second and per CPU second; asserts nothing but that both paths agree.
//   node --import tsx test/bench/generate.bench.ts [--tokens 32] [--prompt 32] [--no-smollm]
import { parseArgs } from 'node:util';
import { initBackend } from '../../server/engine/backend';
import { loadModel } from '../../server/engine/formats/modelFolder';
import { generateIds } from '../../server/engine/generate';
import { LlamaModel } from '../../server/engine/model/llama';
import { randomLlama } from '../helpers/reference';
import { stories260K } from '../helpers/shared';

const { values: a } = parseArgs({ options: {
  tokens: { type: 'string', default: '32' }, prompt: { type: 'string', default: '32' }, 'no-smollm': { type: 'boolean' },
} });
const newTokens = Number(a.tokens);
const promptLength = Number(a.prompt);
const NF4 = { quantization: 'nf4' as const, blockSize: 64, doubleQuant: true };

async function measure(name: string, model: LlamaModel, prompt: number[]): Promise<void> {
  const rows: string[] = [];
  const outputs: number[][] = [];
  // Warm-up: the first call of each kernel pays for setting it up.
  for (const kvCache of [true, false]) await generateIds(model, prompt, { maxTokens: 2, temperature: 0, topP: 1, seed: 1, stopIds: [], kvCache });
  for (const kvCache of [true, false]) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const ids = await generateIds(model, prompt, { maxTokens: newTokens, temperature: 0, topP: 1, seed: 1, stopIds: [], kvCache });
    const wall = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(cpu0);
    const cpu = (c.user + c.system) / 1e6;
    outputs.push(ids);
    rows.push(`${name.padEnd(28)} ${(kvCache ? 'KV cache' : 'no cache').padEnd(9)} ${String(prompt.length).padStart(6)} ${String(ids.length).padStart(6)} ` +
      `${wall.toFixed(2).padStart(8)} ${(ids.length / wall).toFixed(1).padStart(9)} ${(ids.length / cpu).toFixed(1).padStart(11)}`);
  }
  const same = JSON.stringify(outputs[0]) === JSON.stringify(outputs[1]);
  for (const r of rows) console.log(r);
  console.log(`${''.padEnd(28)} same tokens with and without the cache: ${same ? 'yes' : 'NO'}`);
  if (!same) process.exitCode = 1;
}

async function main(): Promise<void> {
  const backend = await initBackend('wasm');
  console.log(`backend ${backend.backend}; greedy, ${newTokens} new tokens; machine shared, figures noisy`);
  console.log('model                        path      prompt    new   wall s   tok/s  tok/CPU-s');
  const shared = stories260K();
  if (!shared.skip) {
    const loaded = await loadModel(shared.dir);
    const model = LlamaModel.fromLoaded(loaded, NF4);
    const text = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.';
    await measure('stories260K', model, loaded.tokenizer.encode(text).slice(0, promptLength));
    model.dispose();
  }
  if (!a['no-smollm']) {
    const { config, weights } = randomLlama(1, {
      vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numLayers: 30, numHeads: 9, numKvHeads: 3, headDim: 64,
      maxPositionEmbeddings: 2048, ropeTheta: 100000, tieWordEmbeddings: true,
    });
    const model = LlamaModel.fromLoaded({ dir: '(random SmolLM2-135M shape)', format: 'huggingface', config, weights, tokenizer: undefined as never }, NF4);
    weights.clear();
    await measure('SmolLM2-135M shape (random)', model, Array.from({ length: promptLength }, (_, i) => (i * 7919) % 49152));
    model.dispose();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });

// `qlora demo`: the whole product on a fresh machine with nothing downloaded. Makes a small
// Llama-shaped model and its tokenizer, writes a data set and a .qlora file, shows the base
// model's text, fine-tunes NF4 + LoRA with the loss printed as it falls, saves the adapter,
// and shows the text again with the adapter.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from './common';
import { shipLogs } from '../demo/corpus';
import { writeTinyModel } from '../demo/tinyModel';
import { loadConfigFile } from '../config/load';
import { configText } from '../config/write';
import { train } from '../engine/train/trainer';
import { trainSpec } from '../config/trainSpec';
import { initBackend } from '../engine/backend';
import { loadModel } from '../engine/formats/modelFolder';
import { LlamaModel } from '../engine/model/llama';
import { LoraAdapter } from '../engine/lora/adapter';
import { readAdapter } from '../engine/lora/peft';
import { generateIds } from '../engine/generate';
import { RunRecorder } from '../http/runRecorder';

export const demoUsage = 'qlora demo [--dir DIR] [--steps N]';

const CONFIG = (steps: number) => configText({
  model: { base: './model', quantization: 'nf4', double_quant: true, block_size: 64 },
  lora: { r: 16, alpha: 32, dropout: 0, target_modules: 'all-linear' },
  data: { train: './data/train.jsonl', format: 'text', validation_split: 0.1, max_seq_len: 64 },
  training: {
    max_steps: steps, micro_batch_size: 8, gradient_accumulation_steps: 1, learning_rate: 1e-2, lr_scheduler: 'cosine',
    warmup_steps: 5, seed: 42, eval_every: 25, save_every: 50,
  },
  output: { dir: './runs/demo' },
}, "Written by `qlora demo`: fine-tune the demo's tiny model on ship's logs.");

export async function demoCommand(args: string[]): Promise<void> {
  const { values: v } = parse(args, { dir: { type: 'string' }, steps: { type: 'string' }, backend: { type: 'string' } });
  const dir = resolve(v.dir ?? 'demo');
  const steps = Number(v.steps ?? 200);
  const say = (s: string) => process.stdout.write(s + '\n');
  mkdirSync(join(dir, 'data'), { recursive: true });
  const logs = shipLogs(600, 7);
  writeFileSync(join(dir, 'data', 'train.jsonl'), logs.map((text) => JSON.stringify({ text })).join('\n') + '\n');
  if (!existsSync(join(dir, 'model', 'tiny.bin'))) writeTinyModel(join(dir, 'model'), logs);
  writeFileSync(join(dir, 'demo.qlora'), CONFIG(steps));
  say(`demo folder: ${dir}\n  model/      a tiny Llama (random weights, a vocabulary learnt from the data)\n` +
    `  data/       ${logs.length} ship's-log lines, e.g. "${logs[0]}"\n  demo.qlora  the fine-tune config`);

  const { config } = loadConfigFile(join(dir, 'demo.qlora'));
  await initBackend((v.backend ?? config.training.backend) as 'auto');
  const sample = async (adapterDir?: string) => {
    const loaded = await loadModel(config.model.base);
    const model = LlamaModel.fromLoaded(loaded, { quantization: 'nf4', blockSize: 64, doubleQuant: true });
    if (adapterDir) {
      const a = readAdapter(adapterDir);
      model.lora = LoraAdapter.fromPeftTensors(loaded.config, a.config, a.tensors, adapterDir);
    }
    const prompt = loaded.tokenizer.encode('Day 5.', { bos: true });
    const ids = await generateIds(model, prompt, { maxTokens: 40, temperature: 0, topP: 1, seed: 1, stopIds: [loaded.tokenizer.eosId] });
    model.dispose();
    return loaded.tokenizer.decode([...prompt, ...ids]).replace(/\n/g, ' ');
  };
  say(`\nbefore fine-tuning, "Day 5." continues as:\n  ${await sample()}\n`);
  let first: number | undefined, last = 0;
  // run.json + metrics.jsonl in output.dir, as `qlora train` writes them: the editor lists this run.
  const record = RunRecorder.begin({ config, configText: CONFIG(steps), configFile: join(dir, 'demo.qlora'), resume: false });
  let result: Awaited<ReturnType<typeof train>>;
  try {
    result = await train(trainSpec(config), {
      onEvent: (e) => {
        record.event(e);
        if (e.type === 'start') say(`fine-tuning on ${e.backend} (${e.device}): NF4 base + LoRA, ${e.trainableParams.toLocaleString('en-US')} trainable parameters, ${e.totalSteps} steps`);
        if (e.type === 'step') {
          first ??= e.loss;
          last = e.loss;
          if (e.step === 1 || e.step % 10 === 0) say(`  step ${String(e.step).padStart(4)}  loss ${e.loss.toFixed(4)}  ${e.tokensPerSec.toFixed(0)} tok/s`);
        }
        if (e.type === 'eval') say(`  eval loss at step ${e.step}: ${e.evalLoss.toFixed(4)}`);
      },
    });
  } catch (e) {
    record.end('error', (e as Error).message);
    throw e;
  }
  say(`\nloss ${first?.toFixed(3)} -> ${last.toFixed(3)}; adapter saved to ${result.adapter}`);
  say(`\nafter fine-tuning, "Day 5." continues as:\n  ${await sample(result.adapter)}`);
}

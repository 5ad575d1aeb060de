// The training loop: a resolved .qlora config in, typed events out, a PEFT adapter and
// checkpoints on disk. Each optimizer step accumulates gradient_accumulation_steps
// micro-batches, clips by global norm, and takes one AdamW step on the LoRA weights only.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { tf } from '../tf';
import { initBackend } from '../backend';
import { loadModel } from '../formats/modelFolder';
import { countParameters } from '../model/config';
import { LlamaModel } from '../model/llama';
import { LoraAdapter } from '../lora/adapter';
import { readAdapter, writeAdapter, type BaseQuantization } from '../lora/peft';
import { Rng } from '../rng';
import type { TrainSpec } from './spec';
import { Batcher, sequentialBatches, type Batch } from './batching';
import {
  newestCheckpoint, readOptimizerState, readTrainerState, removeCheckpointDebris, saveCheckpoint, type TrainerState,
} from './checkpoint';
import { loadDataSet } from './data';
import type { TrainEvent } from './events';
import { clipByGlobalNorm, GradAccumulator } from './gradients';
import { AdamW, alignGradients } from './optimizer';
import { collapsed, unfitWeights } from './health';
import { preflightTraining } from './preflight';
import { learningRateAt } from './schedule';
import type { Example } from './types';

export interface TrainOptions {
  /** Stop after this many optimizer steps in total (overrides the config's length). */
  maxSteps?: number;
  /** Continue from the newest complete checkpoint in output.dir. */
  resume?: boolean;
  onEvent: (e: TrainEvent) => void;
  /** Checked between steps: when it returns true, the run checkpoints and stops. */
  shouldStop?: () => boolean;
}

/** Separate random streams, so that adding one use of randomness never shifts another. */
const LORA_INIT_STREAM = 0x6c6f7261;
const DROPOUT_STREAM = 0x64726f70;

export async function train(config: TrainSpec, opts: TrainOptions): Promise<{ adapter: string; step: number }> {
  const emit = opts.onEvent;
  const t = config.training;
  // Half-written checkpoints of a killed run go now, not at the next save.
  const debris = removeCheckpointDebris(config.output.dir);
  const backend = await initBackend(t.backend);
  preflightTraining(config, backend.backend, emit); // memory plan vs budget, before any loading (memory/preflight.ts)
  const loaded = await loadModel(config.model.base);
  const ctx = loaded.config.maxPositionEmbeddings;
  if (config.data.max_seq_len > ctx) {
    throw new Error(`data.max_seq_len is ${config.data.max_seq_len} but the model's context is ${ctx} tokens`);
  }
  const data = loadDataSet(config.data.train, loaded.tokenizer, {
    format: config.data.format, maxSeqLen: config.data.max_seq_len, seed: t.seed,
    trainOnPrompt: config.data.train_on_prompt, validationSplit: config.data.validation ? 0 : config.data.validation_split,
    validationFile: config.data.validation,
  });
  const model = LlamaModel.fromLoaded(loaded, {
    quantization: config.model.quantization, blockSize: config.model.block_size, doubleQuant: config.model.double_quant,
  });
  loaded.weights.clear(); // the host copy is no longer needed once the backend holds the model
  const lora = LoraAdapter.create(loaded.config, {
    r: config.lora.r, alpha: config.lora.alpha, dropout: config.lora.dropout,
    targetModules: config.lora.target_modules, rslora: config.lora.rslora,
  }, new Rng((t.seed ^ LORA_INIT_STREAM) >>> 0));
  model.lora = lora;
  const params = lora.variables();
  const optimizer = new AdamW(params, { weightDecay: t.weight_decay });
  const batchOpts = { microBatchSize: t.micro_batch_size, maxSeqLen: config.data.max_seq_len, padId: 0, seed: t.seed };
  const batcher = new Batcher(data.train, batchOpts);
  const accum = t.gradient_accumulation_steps;
  const stepsPerEpoch = Math.ceil(batcher.batchesPerEpoch / accum);
  const totalSteps = t.max_steps ?? (t.epochs ?? 1) * stepsPerEpoch;
  const stopAt = Math.min(opts.maxSteps ?? totalSteps, totalSteps);
  const fingerprint = dataFingerprint(data.train);
  let dropoutRng = new Rng((t.seed ^ DROPOUT_STREAM) >>> 0);
  let step = 0;
  let bestEvalLoss: number | null = null;

  if (opts.resume) {
    const dir = newestCheckpoint(config.output.dir);
    if (!dir) throw new Error(`--resume: no complete checkpoint in ${join(config.output.dir, 'checkpoints')}`);
    const st = readTrainerState(dir);
    if (st.dataFingerprint !== fingerprint) {
      throw new Error(`--resume: the training data changed since ${dir} was saved; start a new run instead`);
    }
    step = st.step;
    batcher.setPosition(st.batcher);
    dropoutRng = new Rng(st.dropoutRng);
    bestEvalLoss = st.bestEvalLoss;
    const saved = LoraAdapter.fromPeftTensors(loaded.config, lora.config, readAdapter(dir).tensors, dir);
    params.forEach((p, i) => p.assign(saved.variables()[i]));
    saved.dispose();
    optimizer.setState(readOptimizerState(dir, st.step, params.length));
    emit({ type: 'log', level: 'info', message: `resuming from ${dir} at step ${step}` });
  }

  if (debris.length) emit({ type: 'log', level: 'info', message: `removed what a killed run left half-written: ${debris.join(', ')}` });
  emit({
    type: 'start', backend: backend.backend, device: backend.device, totalSteps, startStep: step,
    trainableParams: lora.parameterCount(), totalParams: countParameters(loaded.config).total,
    trainExamples: data.train.length, validationExamples: data.validation.length,
    truncatedExamples: data.trainStats.truncated, droppedExamples: data.trainStats.dropped,
  });

  const state = (): TrainerState => ({
    step, totalSteps, batcher: batcher.position(), dropoutRng: dropoutRng.state(), bestEvalLoss,
    config, dataFingerprint: fingerprint,
  });
  const baseQuantization: BaseQuantization = {
    quantization: config.model.quantization, block_size: config.model.block_size, double_quant: config.model.double_quant,
  };
  let probe: ReturnType<typeof upload> | undefined;
  let lastSaved: string | undefined = opts.resume ? newestCheckpoint(config.output.dir) : undefined;
  /** Refuses to save weights that are not fit to (see health.ts); the last good checkpoint stays. */
  const guardWeights = async () => {
    const why = await unfitWeights(params, model, probe, loaded.config.vocabSize);
    if (why) {
      throw new Error(`after step ${step} ${why}: nothing was saved, and ${lastSaved ? `the last good checkpoint, ${lastSaved}, is kept` : 'no checkpoint was written yet'}. ` +
        'Try a lower learning_rate or max_grad_norm.');
    }
  };
  const checkpoint = async () => {
    await guardWeights();
    const path = await saveCheckpoint(config.output.dir, state(), lora, optimizer, config.model.base, baseQuantization);
    lastSaved = path;
    emit({ type: 'checkpoint', step, path });
  };

  const started = performance.now();
  const firstStep = step;
  const upload = (b: Batch) => ({
    ids: tf.tensor2d(b.inputs, b.shape, 'int32'),
    targets: tf.tensor2d(b.targets, b.shape, 'int32'),
    weights: tf.tensor2d(b.weights, b.shape, 'float32'),
  });
  let stopped = false;
  try {
    while (step < stopAt) {
      if (opts.shouldStop?.()) { stopped = true; break; }
      const t0 = performance.now();
      const acc = new GradAccumulator();
      let lossSum = 0, tokens = 0, epoch = 0;
      for (let k = 0; k < accum; k++) {
        const batch = batcher.next();
        epoch = batch.epoch;
        tokens += batch.tokens;
        const b = upload(batch);
        if (probe) tf.dispose([probe.ids, probe.targets, probe.weights]);
        probe = { ids: tf.clone(b.ids), targets: tf.clone(b.targets), weights: tf.clone(b.weights) };
        const { value, grads } = tf.variableGrads(
          () => model.loss(b.ids, b.targets, b.weights, {
            dropoutSeed: () => dropoutRng.nextUint32(), gradientCheckpointing: t.gradient_checkpointing,
          }), params);
        lossSum += (await value.data())[0];
        acc.add(alignGradients(params, grads));
        tf.dispose([value, ...Object.values(grads), b.ids, b.targets, b.weights]);
      }
      const loss = lossSum / accum;
      const mean = acc.mean();
      const clipped = await clipByGlobalNorm(mean, t.max_grad_norm);
      if (!Number.isFinite(loss) || !Number.isFinite(clipped.norm)) {
        tf.dispose([...mean, ...clipped.grads]);
        throw new Error(`the loss became ${loss} (gradient norm ${clipped.norm}) at step ${step + 1}; ` +
          `${lastSaved ? `the last good checkpoint, ${lastSaved}, is kept` : 'no checkpoint was written yet'}. Try a lower learning_rate or max_grad_norm.`);
      }
      if (collapsed(loss, clipped.norm, loaded.config.vocabSize)) {
        tf.dispose([...new Set([...mean, ...clipped.grads])]);
        throw new Error(`the model collapsed at step ${step + 1}: it predicts every token with the same probability ` +
          `(loss ${loss.toFixed(4)} = ln ${loaded.config.vocabSize}, gradient norm ${clipped.norm}), and no step can leave that. ` +
          `${lastSaved ? `The last good checkpoint, ${lastSaved}, is kept; ` : 'No checkpoint was written yet; '}try a lower learning_rate.`);
      }
      const lr = learningRateAt(step, { learningRate: t.learning_rate, scheduler: t.lr_scheduler, warmupSteps: t.warmup_steps, totalSteps });
      optimizer.step(clipped.grads, lr);
      tf.dispose([...new Set([...mean, ...clipped.grads])]);
      step++;
      const now = performance.now();
      const mem = tf.memory();
      const perStep = (now - started) / (step - firstStep);
      emit({
        type: 'step', step, totalSteps, epoch, loss, lr, gradNorm: clipped.norm,
        tokensPerSec: tokens / ((now - t0) / 1000), memoryBytes: mem.numBytes, numTensors: mem.numTensors,
        elapsedMs: now - started, etaMs: perStep * (stopAt - step),
      });
      if (t.eval_every > 0 && step % t.eval_every === 0 && data.validation.length) {
        const ev = await evaluate(model, data.validation, batchOpts);
        bestEvalLoss = bestEvalLoss === null ? ev.loss : Math.min(bestEvalLoss, ev.loss);
        emit({ type: 'eval', step, evalLoss: ev.loss, tokens: ev.tokens });
      }
      if (t.save_every > 0 && step % t.save_every === 0 && step < stopAt) await checkpoint();
    }
    await checkpoint(); // guarded: the adapter below holds the same weights
    const adapterDir = join(config.output.dir, 'adapter');
    await writeAdapter(adapterDir, lora, config.model.base, baseQuantization);
    emit({ type: 'done', step, adapter: adapterDir, stopped });
    return { adapter: adapterDir, step };
  } finally {
    if (probe) tf.dispose([probe.ids, probe.targets, probe.weights]);
    optimizer.dispose();
    model.dispose();
  }
}

/** Mean loss per trained token over examples, in order, without dropout. */
export async function evaluate(model: LlamaModel, examples: Example[], opts: { microBatchSize: number; maxSeqLen: number; padId: number }): Promise<{ loss: number; tokens: number }> {
  let sum = 0, count = 0;
  for (const b of sequentialBatches(examples, opts)) {
    const l = tf.tidy(() => model.loss(
      tf.tensor2d(b.inputs, b.shape, 'int32'), tf.tensor2d(b.targets, b.shape, 'int32'), tf.tensor2d(b.weights, b.shape)));
    sum += (await l.data())[0] * b.targetCount;
    count += b.targetCount;
    l.dispose();
  }
  return { loss: sum / Math.max(count, 1), tokens: count };
}

function dataFingerprint(examples: Example[]): string {
  const h = createHash('sha256');
  for (const e of examples) { h.update(Buffer.from(e.ids.buffer, e.ids.byteOffset, e.ids.byteLength)); h.update(Buffer.from(e.mask)); }
  return h.digest('hex').slice(0, 16);
}

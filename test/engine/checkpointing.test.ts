// The training-step path at model level: LoRA gradients through the whole model (chunked
// loss, compact tables, optional gradient checkpointing) against float64 central
// differences of the plain reference model with the adapter merged in, and checkpointing
// on against off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import type { LlamaConfig } from '../../server/engine/model/config';
import { LlamaModel } from '../../server/engine/model/llama';
import { LoraAdapter } from '../../server/engine/lora/adapter';
import { Rng } from '../../server/engine/rng';
import type { WeightMap } from '../../server/engine/formats/types';
import { randomLlama, referenceLogits } from '../helpers/reference';

const R = 2, ALPHA = 4; // scaling 2

function setup(seed: number, over: Partial<LlamaConfig>, dropout = 0) {
  const { config, weights } = randomLlama(seed, over);
  const model = LlamaModel.fromLoaded({ dir: '(random)', format: 'huggingface', config, weights, tokenizer: undefined as never },
    { quantization: 'none', blockSize: 64, doubleQuant: false });
  const lora = LoraAdapter.create(config, { r: R, alpha: ALPHA, dropout, targetModules: 'all-linear', rslora: false }, new Rng(seed));
  // B starts at zero (PEFT's init), which would leave dL/dA zero: give it values.
  const rng = new Rng(seed + 1);
  for (const l of lora.layers.values()) l.B.assign(tf.tensor2d(Float32Array.from({ length: l.B.size }, () => rng.normal() * 0.3), l.B.shape as [number, number]));
  model.lora = lora;
  return { config, weights, model, lora };
}

/** Weighted mean NLL in float64 of the reference model with W + scaling * B A in every projection. */
function referenceLoraLoss(c: LlamaConfig, weights: WeightMap, lora: Map<string, { A: Float64Array; B: Float64Array; out: number; inp: number }>,
  ids: number[], targets: number[], w: number[]): number {
  const merged: WeightMap = new Map(weights);
  const scaling = ALPHA / R;
  for (const [name, { A, B, out, inp }] of lora) {
    const base = weights.get(`${name}.weight`)!.data;
    const d = new Float64Array(out * inp);
    for (let o = 0; o < out; o++) {
      for (let i = 0; i < inp; i++) {
        let s = 0;
        for (let k = 0; k < R; k++) s += B[o * R + k] * A[k * inp + i];
        d[o * inp + i] = base[o * inp + i] + scaling * s;
      }
    }
    merged.set(`${name}.weight`, { shape: [out, inp], data: d as unknown as Float32Array });
  }
  const logits = referenceLogits(c, merged, ids);
  const V = c.vocabSize;
  let total = 0, count = 0;
  for (let t = 0; t < ids.length; t++) {
    let max = -Infinity;
    for (let j = 0; j < V; j++) max = Math.max(max, logits[t * V + j]);
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(logits[t * V + j] - max);
    total += w[t] * (Math.log(s) + max - logits[t * V + targets[t]]);
    count += w[t];
  }
  return total / Math.max(count, 1);
}

for (const backend of ['wasm', 'cpu'] as const) {
  for (const [label, over] of [
    ['tied head', { tieWordEmbeddings: true }],
    ['untied head, llama3 rope scaling', { tieWordEmbeddings: false, ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 } }],
  ] as const) {
    test(`${backend}: ${label}: LoRA gradients through the model match float64 central differences, checkpointing on and off`, async () => {
      await initBackend(backend);
      const { config, weights, model, lora } = setup(21, over as Partial<LlamaConfig>);
      model.vocabChunk = 24; // 64 = 24 + 24 + 16: chunks that do not divide the vocabulary
      const ids = [1, 5, 9, 33, 2, 17, 63, 8, 12];
      const targets = [5, 9, 33, 2, 17, 63, 8, 12, 40];
      const w = [1, 1, 0, 1, 1, 1, 0, 1, 1];
      const T = ids.length;
      const idsT = tf.tensor2d([ids], [1, T], 'int32'), tgT = tf.tensor2d([targets], [1, T], 'int32'), wT = tf.tensor2d([w], [1, T]);
      const vars = lora.variables();
      const grads: Record<string, Float32Array[]> = {};
      for (const ck of [false, true]) {
        const r = tf.variableGrads(() => model.loss(idsT, tgT, wT, { gradientCheckpointing: ck }), vars);
        grads[String(ck)] = vars.map((v) => r.grads[v.name].dataSync() as Float32Array);
        tf.dispose([r.value, ...Object.values(r.grads)]);
      }
      // Host copies in float64 of every adapter, and the finite differences on a sample of entries.
      const host = new Map([...lora.layers].map(([name, l]) => [name, {
        A: Float64Array.from(l.A.dataSync()), B: Float64Array.from(l.B.dataSync()), out: l.outFeatures, inp: l.inFeatures,
      }]));
      const L = () => referenceLoraLoss(config, weights, host, ids, targets, w);
      const eps = 1e-5;
      const rng = new Rng(5);
      for (const ck of ['false', 'true']) {
        let num = 0, den = 0, n = 0;
        [...lora.layers.keys()].forEach((name, li) => {
          for (const [which, vi] of [['A', 2 * li], ['B', 2 * li + 1]] as const) {
            const p = host.get(name)![which];
            for (let s = 0; s < 4; s++) {
              const i = Math.floor(rng.uniform(0, p.length));
              const keep = p[i];
              p[i] = keep + eps; const up = L();
              p[i] = keep - eps; const down = L();
              p[i] = keep;
              const fd = (up - down) / (2 * eps);
              num += (grads[ck][vi][i] - fd) ** 2;
              den += fd ** 2;
              n++;
            }
          }
        });
        const rel = Math.sqrt(num / den);
        console.log(`# ${backend}, ${label}, checkpointing ${ck}: relative error ${rel.toExponential(2)} over ${n} entries`);
        assert.ok(rel < 1e-3, `checkpointing ${ck}: relative error ${rel}`);
      }
      assert.ok(den(grads.true) > 0, 'the gradients are not all zero');
      tf.dispose([idsT, tgT, wT]);
      model.dispose();
    });
  }

  test(`${backend}: checkpointing on gives the same loss and gradients as off (dropout, padding mask, Qwen2 biases); no tensor leaks`, async () => {
    await initBackend(backend);
    const { model, lora } = setup(31, { family: 'qwen2', attentionBias: true, tieWordEmbeddings: false }, 0.2);
    const ids = tf.tensor2d([[1, 7, 7, 3, 9, 4], [1, 4, 2, 0, 0, 0]], [2, 6], 'int32');
    const targets = tf.tensor2d([[7, 7, 3, 9, 4, 5], [4, 2, 8, 0, 0, 0]], [2, 6], 'int32');
    const weights = tf.tensor2d([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], [2, 6]);
    const keyMask = tf.tensor2d([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], [2, 6]);
    const vars = lora.variables();
    const step = (ck: boolean) => {
      const rng = new Rng(77); // the same dropout masks both ways
      const r = tf.variableGrads(() => model.loss(ids, targets, weights, {
        gradientCheckpointing: ck, attentionMask: keyMask, dropoutSeed: () => rng.nextUint32(),
      }), vars);
      const out = { loss: r.value.dataSync()[0], g: vars.map((v) => r.grads[v.name].dataSync() as Float32Array) };
      tf.dispose([r.value, ...Object.values(r.grads)]);
      return out;
    };
    const off = step(false);
    const n0 = tf.memory().numTensors;
    const on = step(true);
    assert.equal(tf.memory().numTensors, n0, 'numTensors after a checkpointed step');
    step(true);
    assert.equal(tf.memory().numTensors, n0, 'numTensors after a second checkpointed step');
    assert.ok(Math.abs(on.loss - off.loss) <= 1e-6 * Math.abs(off.loss), `loss ${on.loss} vs ${off.loss}`);
    let maxDiff = 0, maxG = 0;
    on.g.forEach((g, i) => g.forEach((x, j) => { maxDiff = Math.max(maxDiff, Math.abs(x - off.g[i][j])); maxG = Math.max(maxG, Math.abs(x)); }));
    console.log(`# ${backend}: max |g(checkpointed) - g| = ${maxDiff.toExponential(2)} (max |g| ${maxG.toExponential(2)})`);
    assert.ok(maxG > 0 && maxDiff <= 1e-5 * maxG, `gradients differ by ${maxDiff}`);
    tf.dispose([ids, targets, weights, keyMask]);
    model.dispose();
  });
}

function den(g: Float32Array[]): number {
  return g.reduce((s, a) => s + a.reduce((t, x) => t + x * x, 0), 0);
}

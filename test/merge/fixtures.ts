// Models and adapters for the merge tests, made on the spot: a tiny llama2.c model (and its
// Hugging Face conversion), random PEFT adapters with this project's quantization record,
// and the merged weights computed independently of the merge code (float64 B A, the
// quantization reference for the 4-bit round trip).
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeTinyModel, TINY_MODEL, type TinyModelSpec } from '../../server/demo/tinyModel';
import { shipLogs } from '../../server/demo/corpus';
import { LINEAR_MODULES, linearName, linearShape, type LinearModule, type LlamaConfig } from '../../server/engine/model/config';
import { writeSafetensors } from '../../server/engine/formats/safetensors';
import type { WeightMap } from '../../server/engine/formats/types';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, BASE_QUANTIZATION, peftConfig, type BaseQuantization } from '../../server/engine/lora/peft';
import { dequantizeWeightReference, quantizeWeight } from '../../server/engine/quant/quantizedWeight';
import { Rng } from '../../server/engine/rng';

export const SMALL: TinyModelSpec = { ...TINY_MODEL, nLayers: 2 };

export function tinyBase(dir: string, spec: TinyModelSpec = SMALL): string {
  return writeTinyModel(dir, shipLogs(120, 1), spec);
}

export interface AdapterSpec {
  r?: number;
  alpha?: number;
  rslora?: boolean;
  targets?: LinearModule[];
  baseModel: string;
  quant?: BaseQuantization | null;
  seed?: number;
  /** Layers to write adapters for (default: all of the config's). */
  layers?: number;
}

/** A random adapter: A and B both non-zero, so that every merged projection changes. */
export function writeAdapter(dir: string, c: LlamaConfig, s: AdapterSpec): WeightMap {
  const r = s.r ?? 4, alpha = s.alpha ?? 8, targets = s.targets ?? [...LINEAR_MODULES];
  const rng = new Rng(s.seed ?? 7);
  const tensors: WeightMap = new Map();
  for (let l = 0; l < (s.layers ?? c.numLayers); l++) {
    for (const m of targets) {
      const [out, inp] = linearShape(c, m);
      const name = `base_model.model.${linearName(l, m)}`;
      tensors.set(`${name}.lora_A.weight`, { shape: [r, inp], data: Float32Array.from({ length: r * inp }, () => 0.1 * rng.normal()) });
      tensors.set(`${name}.lora_B.weight`, { shape: [out, r], data: Float32Array.from({ length: out * r }, () => 0.05 * rng.normal()) });
    }
  }
  mkdirSync(dir, { recursive: true });
  const cfg = peftConfig({ r, alpha, dropout: 0, targetModules: targets, rslora: !!s.rslora }, targets, s.baseModel);
  writeFileSync(join(dir, ADAPTER_CONFIG), JSON.stringify(cfg, null, 2) + '\n');
  writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors, { dtype: 'F32' });
  const quant = s.quant === undefined ? { quantization: 'nf4', block_size: 64, double_quant: true } as BaseQuantization : s.quant;
  if (quant) writeFileSync(join(dir, BASE_QUANTIZATION), JSON.stringify(quant, null, 2) + '\n');
  return tensors;
}

/** The merged weights, computed from scratch: (round-tripped) W + scaling * B A in float64. */
export function expectedMerge(base: WeightMap, adapter: WeightMap, scaling: number, quant: BaseQuantization | null): WeightMap {
  const out: WeightMap = new Map();
  for (const [name, t] of base) {
    let data: Float32Array = Float32Array.from(t.data);
    const projection = /^model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$/.test(name);
    if (projection && quant && quant.quantization !== 'none') {
      const q = quantizeWeight({ shape: t.shape, data }, { quantType: quant.quantization, blockSize: quant.block_size, doubleQuant: quant.double_quant });
      data = dequantizeWeightReference(q.data, q.state);
    }
    const module = name.slice(0, -'.weight'.length);
    const A = adapter.get(`base_model.model.${module}.lora_A.weight`), B = adapter.get(`base_model.model.${module}.lora_B.weight`);
    if (A && B) {
      const [o, i] = t.shape, r = A.shape[0];
      for (let row = 0; row < o; row++) {
        for (let col = 0; col < i; col++) {
          let s = 0;
          for (let k = 0; k < r; k++) s += B.data[row * r + k] * A.data[k * i + col];
          data[row * i + col] = data[row * i + col] + scaling * s;
        }
      }
    }
    out.set(name, { shape: t.shape, data });
  }
  return out;
}

/** Largest |a - b| over every tensor of two weight maps with the same names and shapes. */
export function maxAbsDiff(a: WeightMap, b: WeightMap): number {
  let worst = 0;
  for (const [name, t] of a) {
    const u = b.get(name);
    if (!u || u.data.length !== t.data.length) throw new Error(`${name} missing or resized`);
    for (let i = 0; i < t.data.length; i++) worst = Math.max(worst, Math.abs(t.data[i] - u.data[i]));
  }
  return worst;
}

/** A hash of every file under `dir` (names, sizes, bytes): to show a folder was not touched. */
export function folderHash(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      h.update(p);
      if (statSync(p).isDirectory()) walk(p);
      else h.update(readFileSync(p));
    }
  };
  walk(dir);
  return h.digest('hex');
}

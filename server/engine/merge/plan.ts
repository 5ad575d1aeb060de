// Every check a merge makes before it writes anything: the adapter is a readable, sane PEFT
// LoRA adapter; its modules and shapes fit the base model; rank and alpha come from its
// config; the output folder is free and outside the base and the adapter. Any failure is a
// MergeRefusedError whose message names the file and what to change.
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { LINEAR_MODULES, linearName, linearShape, type LinearModule } from '../model/config';
import { checkQuantization, type QuantizationOptions } from '../quant/spec';
import type { HostTensor } from '../formats/types';
import { loraScaling, PEFT_PREFIX, resolveTargets } from '../lora/names';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, BASE_QUANTIZATION, readAdapter, type ReadAdapter } from '../lora/peft';
import { openBase, type BaseReader } from './baseReader';
import { MergeRefusedError, type MergeDtype, type MergeOptions, type MergeSummary } from './types';

// lora/adapter.ts and lora/loraLayer.ts hold these too, but load TensorFlow.js: a merge is
// plain host arithmetic and must stay light enough for the extension host to import.

/** One projection's adapter: A (r, in), B (out, r). */
export interface LoraPair {
  A: HostTensor;
  B: HostTensor;
}

export interface CheckedMerge {
  summary: MergeSummary;
  base: BaseReader;
  /** Keyed by the base weight it changes, e.g. model.layers.0.self_attn.q_proj.weight. */
  pairs: Map<string, LoraPair>;
  /** Every block projection weight: what the 4-bit round trip applies to. */
  projections: Set<string>;
  /** Said once in the start of the merge (e.g. how the base is read). */
  notes: string[];
}

const BYTES: Record<MergeDtype, number> = { float32: 4, float16: 2, bfloat16: 2 };
const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Runs `fn`; any error becomes a refusal with the same message. */
function refusing<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw err instanceof MergeRefusedError ? err : new MergeRefusedError((err as Error).message);
  }
}

/** `child` is `parent` or lies inside it. */
function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/** The real path of `p`, following links in the part that exists (the rest may not exist yet). */
function realPathOf(p: string): string {
  let existing = resolve(p);
  const rest: string[] = [];
  while (!existsSync(existing)) {
    const parent = dirname(existing);
    if (parent === existing) break;
    rest.unshift(basename(existing));
    existing = parent;
  }
  return join(realpathSync(existing), ...rest);
}

function adapterFolder(path: string): string {
  const p = resolve(path);
  if (existsSync(p) && statSync(p).isFile() && basename(p) === ADAPTER_CONFIG) return dirname(p);
  return p;
}

function checkRecordedQuantization(a: ReadAdapter): void {
  const q = a.baseQuantization;
  if (!q) return;
  const file = join(a.dir, BASE_QUANTIZATION);
  const why = checkQuantization({ quantization: q.quantization, blockSize: q.block_size }, file);
  if (why) throw new MergeRefusedError(why);
  if (q.quantization === 'none') return;
  if (typeof q.double_quant !== 'boolean') throw new MergeRefusedError(`${file}: double_quant must be true or false`);
}

/** Pairs the adapter's tensors with the base's projections; every mismatch is refused. */
function pairTensors(a: ReadAdapter, base: BaseReader): Map<string, LoraPair> {
  const file = join(a.dir, ADAPTER_WEIGHTS);
  const c = base.config;
  const { r } = a.config;
  if (!Number.isInteger(r) || r <= 0) throw new MergeRefusedError(`${join(a.dir, ADAPTER_CONFIG)}: r must be a positive integer (got ${r})`);
  if (!(a.config.alpha > 0)) throw new MergeRefusedError(`${join(a.dir, ADAPTER_CONFIG)}: lora_alpha must be positive (got ${a.config.alpha})`);
  const targets = resolveTargets(a.config.targetModules);
  const pattern = /^base_model\.model\.(model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+))\.lora_[AB]\.weight$/;
  for (const [name, t] of a.tensors) {
    const m = pattern.exec(name);
    const layer = m ? Number(m[2]) : -1;
    const module = (m?.[3] ?? '') as LinearModule;
    if (!m || !(LINEAR_MODULES as readonly string[]).includes(module) || linearName(layer, module) !== m[1]) {
      throw new MergeRefusedError(`${file}: tensor "${name}" is not a LoRA A or B matrix of a Llama-family projection`);
    }
    if (layer >= c.numLayers) {
      throw new MergeRefusedError(`${file}: tensor "${name}" is for layer ${layer}, but the base model ${base.dir} has ${c.numLayers} layer${c.numLayers === 1 ? '' : 's'}: the adapter was trained on another base (pass the right one with --base)`);
    }
    if (!targets.includes(module)) {
      throw new MergeRefusedError(`${file}: tensor "${name}" is for ${module}, which adapter_config.json target_modules (${targets.join(', ')}) does not list`);
    }
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(t.data[i])) throw new MergeRefusedError(`${file}: tensor "${name}" holds a non-finite value (${t.data[i]}) at index ${i}: the adapter is corrupt`);
    }
  }
  const pairs = new Map<string, LoraPair>();
  for (let l = 0; l < c.numLayers; l++) {
    for (const m of targets) {
      const module = linearName(l, m);
      const [out, inp] = linearShape(c, m);
      const get = (which: 'A' | 'B', shape: [number, number]): HostTensor => {
        const name = `${PEFT_PREFIX}${module}.lora_${which}.weight`;
        const t = a.tensors.get(name);
        if (!t) throw new MergeRefusedError(`${file}: missing "${name}": target_modules lists ${m} and the base has ${c.numLayers} layers, so every layer needs it`);
        if (t.shape.length !== 2 || t.shape[0] !== shape[0] || t.shape[1] !== shape[1]) {
          throw new MergeRefusedError(`${file}: "${name}" has shape [${t.shape.join(', ')}] but the base's ${module} (${out} x ${inp}) with r = ${r} needs [${shape.join(', ')}]: ` +
            'the adapter was trained on another base or with another rank');
        }
        return t;
      };
      pairs.set(`${module}.weight`, { A: get('A', [r, inp]), B: get('B', [out, r]) });
    }
  }
  return pairs;
}

function defaultDtype(base: BaseReader): MergeDtype {
  const dtypes = new Set(base.tensors.map((t) => t.dtype));
  if (dtypes.size === 1 && dtypes.has('F16')) return 'float16';
  if (dtypes.size === 1 && dtypes.has('BF16')) return 'bfloat16';
  return 'float32';
}

function checkOutput(out: string, base: BaseReader, adapterDir: string, force: boolean): void {
  const real = realPathOf(out);
  const baseReal = realPathOf(base.dir);
  const adapterReal = realPathOf(adapterDir);
  if (isInside(real, baseReal)) throw new MergeRefusedError(`output ${out} is inside the base model folder ${base.dir}: choose a folder outside it, so that the base stays untouched`);
  if (isInside(real, adapterReal)) throw new MergeRefusedError(`output ${out} is inside the adapter folder ${adapterDir}: choose a folder outside it, so that the adapter stays untouched`);
  if (isInside(baseReal, real)) throw new MergeRefusedError(`output ${out} contains the base model ${base.dir}: replacing it would delete the base`);
  if (isInside(adapterReal, real)) throw new MergeRefusedError(`output ${out} contains the adapter ${adapterDir}: replacing it would delete the adapter`);
  if (existsSync(out) && !force && (!statSync(out).isDirectory() || readdirSync(out).length > 0)) {
    throw new MergeRefusedError(`output ${out} already exists and is not empty: choose another folder, or replace it (--force)`);
  }
}

/** Reads and checks everything a merge needs; the returned base reader must be closed by the caller. */
export async function checkMerge(opts: MergeOptions): Promise<CheckedMerge> {
  const adapterDir = adapterFolder(opts.adapter);
  const adapter = refusing(() => readAdapter(adapterDir));
  checkRecordedQuantization(adapter);

  let basePath = opts.base;
  if (basePath === undefined) {
    if (!adapter.basePath && !adapter.baseModel) throw new MergeRefusedError(`${join(adapterDir, ADAPTER_CONFIG)} names no base_model_name_or_path: pass the base model (--base MODEL)`);
    // This project's adapters record the local folder beside them; others name it relative to the adapter.
    basePath = adapter.basePath ?? resolve(adapterDir, adapter.baseModel);
    if (!existsSync(basePath)) {
      throw new MergeRefusedError(`base model "${adapter.baseModel}" (base_model_name_or_path of ${join(adapterDir, ADAPTER_CONFIG)}) is not at ${basePath}: pass its local folder (--base MODEL)`);
    }
  }
  let base: BaseReader;
  try {
    base = await openBase(resolve(basePath));
  } catch (err) {
    throw new MergeRefusedError(`base model: ${(err as Error).message}`);
  }
  try {
    const pairs = refusing(() => pairTensors(adapter, base));
    const recorded = adapter.baseQuantization;
    const quantized = (q?: { quantization: string }) => q !== undefined && q.quantization !== 'none';
    const into = opts.into ?? (quantized(opts.quantization) || quantized(recorded) ? 'dequantized' : 'original');
    let quantization: QuantizationOptions | null = null;
    if (into === 'dequantized') {
      quantization = opts.quantization ?? (recorded
        ? { quantization: recorded.quantization, blockSize: recorded.block_size, doubleQuant: recorded.quantization !== 'none' && recorded.double_quant }
        : null);
      const why = quantization ? checkQuantization(quantization, 'merge') : undefined;
      if (why) throw new MergeRefusedError(why);
      if (!quantization || quantization.quantization === 'none') {
        throw new MergeRefusedError(`--into dequantized needs the 4-bit format the adapter was trained against, and ${adapterDir} records none` +
          `${recorded ? ' (it was trained on a full-precision base)' : ` (no ${BASE_QUANTIZATION})`}: use --into original, or pass --quantization nf4|fp4 [--block-size N] [--no-double-quant]`);
      }
    }
    const dtype = opts.dtype ?? defaultDtype(base);
    const out = resolve(opts.out);
    checkOutput(out, base, adapterDir, !!opts.force);

    const projections = new Set<string>();
    for (let l = 0; l < base.config.numLayers; l++) for (const m of LINEAR_MODULES) projections.add(`${linearName(l, m)}.weight`);
    const layerBytes = new Map<number, number>();
    let largestTensorBytes = 0;
    for (const t of base.tensors) {
      const bytes = 4 * count(t.shape);
      largestTensorBytes = Math.max(largestTensorBytes, bytes);
      const layer = /^model\.layers\.(\d+)\./.exec(t.name);
      if (layer) layerBytes.set(Number(layer[1]), (layerBytes.get(Number(layer[1])) ?? 0) + bytes);
    }
    const { r, alpha, rslora } = adapter.config;
    const notes: string[] = [];
    if (base.format === 'llama2c') {
      notes.push(`llama2.c checkpoint read whole (${(base.residentBytes / 2 ** 20).toFixed(1)} MiB of weights): the format has no tensor index to stream from`);
    }
    return {
      base, pairs, projections, notes,
      summary: {
        adapter: adapterDir, base: base.dir, baseFormat: base.format, out, into, dtype, quantization,
        r, alpha, rslora, scaling: loraScaling(alpha, r, rslora), targetModules: resolveTargets(adapter.config.targetModules),
        mergedModules: pairs.size, tensors: base.tensors.length,
        totalBytes: base.tensors.reduce((s, t) => s + BYTES[dtype] * count(t.shape), 0),
        largestTensorBytes, largestLayerBytes: Math.max(0, ...layerBytes.values()),
      },
    };
  } catch (err) {
    base.close();
    throw err;
  }
}

/** The checks of a merge and what it would do, without writing anything (for a confirmation dialog). */
export async function planMerge(opts: MergeOptions): Promise<MergeSummary> {
  const checked = await checkMerge(opts);
  checked.base.close();
  return checked.summary;
}

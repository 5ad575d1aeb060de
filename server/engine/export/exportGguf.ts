// `qlora export gguf`: a model, a model with an adapter merged in on the fly, an adapter
// alone, or the base an adapter trained on, as one GGUF v3 file for llama.cpp, Ollama and
// LM Studio. It reuses the merge's checks (merge/plan.ts), its streaming base reader and its
// arithmetic (the 4-bit round trip, W + scaling B A): tensors are read one at a time into one
// float32 buffer, changed in place, permuted (q/k rows into llama.cpp's rotary order),
// quantized into one byte buffer and appended, so an export holds one tensor and the adapter.
// While it goes, each tensor's quantization error is measured against the float32 values
// it came from: the post-training quantization report.
import { existsSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { LINEAR_MODULES, linearName } from '../model/config';
import { openBase, type BaseReader } from '../merge/baseReader';
import { checkMerge, type LoraPair } from '../merge/plan';
import { addLoraDelta } from '../merge/merge';
import { RoundTripBuffers, roundTrip4bitInPlace } from '../quant/roundTrip';
import { MergeRefusedError, type MergeInto } from '../merge/types';
import type { QuantizationOptions } from '../model/llama';
import { quantizeTensor } from './blockQuant';
import { tensorBytes, typeFor, type ExportType } from './ggmlTypes';
import { GgufStreamWriter, type GgufTensorPlan, type GgufValue } from './ggufWriter';
import { adapterKeys, modelKeys } from './metadata';
import { ggufTensorName, interleaveRotaryRows, rotaryHeadsOf } from './tensorNames';
import {
  ExportRefusedError, type ExportMode, type GgufExportEvent, type GgufExportOptions, type QuantizationReport, type TensorReport,
} from './types';
import { vocabKeys } from './vocab';

const count = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

interface Source {
  base: BaseReader;
  adapter: string | null;
  pairs: Map<string, LoraPair>;
  scaling: number;
  r: number;
  alpha: number;
  rslora: boolean;
  quantization: QuantizationOptions | null;
  into: MergeInto | null;
}

function isInside(child: string, parent: string): boolean {
  const c = resolve(child), p = resolve(parent);
  return c === p || c.startsWith(p.endsWith('/') ? p : `${p}/`);
}

function checkOut(out: string, force: boolean, folders: string[]): void {
  const real = existsSync(dirname(out)) ? resolve(realpathSync(dirname(out)), basename(out)) : out;
  for (const f of folders) {
    if (isInside(real, realpathSync(f))) throw new ExportRefusedError(`output ${out} is inside ${f}: write the GGUF outside the model and adapter folders, so that they stay untouched`);
  }
  if (!existsSync(dirname(out))) throw new ExportRefusedError(`output folder ${dirname(out)} does not exist`);
  if (existsSync(out)) {
    if (statSync(out).isDirectory()) throw new ExportRefusedError(`output ${out} is a folder: name the .gguf file to write`);
    if (!force) throw new ExportRefusedError(`output ${out} already exists: choose another name, or replace it (--force)`);
  }
}

async function openSource(opts: GgufExportOptions, mode: ExportMode, out: string): Promise<Source> {
  if (opts.adapter && opts.model) throw new ExportRefusedError('give either a model (--model) or an adapter (--adapter, with --base), not both');
  if (!opts.adapter) {
    if (!opts.model) throw new ExportRefusedError('nothing to export: give --model MODEL, or --adapter DIR');
    if (mode === 'lora-only') throw new ExportRefusedError('--lora-only exports an adapter: give --adapter DIR');
    let base: BaseReader;
    try {
      base = await openBase(resolve(opts.model));
    } catch (err) {
      throw new ExportRefusedError(`model: ${(err as Error).message}`);
    }
    try {
      checkOut(out, !!opts.force, [base.dir]);
    } catch (err) {
      base.close();
      throw err;
    }
    const q = opts.quantization && opts.quantization.quantization !== 'none' ? opts.quantization : null;
    return { base, adapter: null, pairs: new Map(), scaling: 0, r: 0, alpha: 0, rslora: false, quantization: q, into: q ? 'dequantized' : null };
  }
  // The merge's checks: adapter options and tensors, base shapes, recorded quantization. Its
  // output check runs on a folder-shaped name beside ours; ours is a file, checked below.
  let checked;
  try {
    checked = await checkMerge({
      adapter: opts.adapter, base: opts.base, into: opts.into, quantization: opts.quantization,
      out: resolve(dirname(out), `.${basename(out)}.check`),
    });
  } catch (err) {
    throw err instanceof MergeRefusedError ? new ExportRefusedError(err.message) : err;
  }
  const s = checked.summary;
  try {
    checkOut(out, !!opts.force, [checked.base.dir, s.adapter]);
  } catch (err) {
    checked.base.close();
    throw err;
  }
  return {
    base: checked.base, adapter: s.adapter, pairs: checked.pairs, scaling: s.scaling, r: s.r, alpha: s.alpha, rslora: s.rslora,
    quantization: s.quantization, into: s.into,
  };
}

/** Writes the GGUF; resolves with the quantization report once the file is in place. */
export async function exportGguf(opts: GgufExportOptions, onEvent: (e: GgufExportEvent) => void = () => {}): Promise<QuantizationReport> {
  const started = Date.now();
  const mode = opts.mode ?? 'merged';
  const wanted: ExportType = opts.type ?? 'f16';
  const out = resolve(opts.out);
  if (!out.endsWith('.gguf')) throw new ExportRefusedError(`output ${opts.out} should end in .gguf`);
  const src = await openSource(opts, mode, out);
  const { base } = src;
  let writer: GgufStreamWriter | undefined;
  try {
    const c = base.config;
    if (c.family === 'qwen2') throw new ExportRefusedError(`${base.dir}: Qwen2 GGUF export (attention biases, NEOX rope) is not supported yet; Llama and Mistral models are`);
    const name = opts.name ?? basename(src.adapter ?? base.dir);
    const projections = new Set<string>();
    for (let l = 0; l < c.numLayers; l++) for (const m of LINEAR_MODULES) projections.add(`${linearName(l, m)}.weight`);

    let kv: Map<string, GgufValue>;
    let plan: (GgufTensorPlan & { hf: string; part?: 'A' | 'B' })[];
    if (mode === 'lora-only') {
      kv = adapterKeys(c, { name, alpha: src.alpha, r: src.r, rslora: src.rslora });
      plan = [...src.pairs].flatMap(([hf, p]) => [
        { hf, part: 'A' as const, name: `${ggufTensorName(hf)}.lora_a`, shape: p.A.shape, type: 'f32' as const },
        { hf, part: 'B' as const, name: `${ggufTensorName(hf)}.lora_b`, shape: p.B.shape, type: 'f32' as const },
      ]);
    } else {
      const vocab = vocabKeys(base.tokenizer, c.vocabSize);
      kv = new Map([...modelKeys(c, { name, type: wanted }), ...vocab.kv]);
      plan = base.tensors.map((t) => ({ hf: t.name, name: ggufTensorName(t.name), shape: t.shape, type: typeFor(wanted, t.shape) }));
    }
    const dq = mode !== 'lora-only' ? src.quantization : null;
    const merging = mode === 'merged';
    writer = new GgufStreamWriter(out, kv, plan);
    onEvent({
      type: 'start', mode, out, base: base.dir, adapter: src.adapter, ggmlType: wanted, quantization: dq, into: mode === 'merged' ? src.into : null,
      tensors: plan.length, totalBytes: writer.totalBytes,
    });
    const largest = Math.max(0, ...base.tensors.map((t) => count(t.shape)));
    const scratch = new Float32Array(mode === 'lora-only' ? 0 : largest);
    const encoded = new Uint8Array(Math.max(0, ...plan.map((p) => tensorBytes(p.type, count(p.shape)))));
    const blockStats = new RoundTripBuffers();
    const tensors: TensorReport[] = [];
    let bytesWritten = 0;
    for (let i = 0; i < plan.length; i++) {
      await new Promise((turn) => setImmediate(turn));
      if (opts.signal?.aborted) throw new ExportRefusedError('export cancelled');
      const p = plan[i];
      let w: Float32Array;
      if (p.part) {
        const pair = src.pairs.get(p.hf)!;
        w = p.part === 'A' ? pair.A.data : pair.B.data;
        const heads = rotaryHeadsOf(p.hf, c);
        if (p.part === 'B' && heads) w = interleaveRotaryRows(w, heads, p.shape[1]);
      } else {
        w = base.read(p.hf, scratch);
        if (dq && projections.has(p.hf)) {
          roundTrip4bitInPlace(w, { quantType: dq.quantization as 'nf4' | 'fp4', blockSize: dq.blockSize, doubleQuant: dq.doubleQuant }, blockStats);
        }
        const pair = merging ? src.pairs.get(p.hf) : undefined;
        if (pair) addLoraDelta(w, pair, src.scaling);
        const heads = rotaryHeadsOf(p.hf, c);
        if (heads) w = interleaveRotaryRows(w, heads, p.shape[p.shape.length - 1]);
      }
      const { bytes, error } = quantizeTensor(p.type, w, p.shape[p.shape.length - 1], encoded);
      if (p.type === 'f16' && error.maxAbs === Infinity) {
        throw new ExportRefusedError(`${p.hf}: values exceed the range of float16: use --type bf16 or f32`);
      }
      writer.write(p.name, bytes);
      bytesWritten += bytes.length;
      const report: TensorReport = { name: p.hf + (p.part ? `.lora_${p.part}` : ''), gguf: p.name, ggmlType: p.type, count: w.length, ...error };
      tensors.push(report);
      onEvent({ type: 'tensor', ...report, done: i + 1, total: plan.length, bytesWritten });
    }
    writer.finish();
    writer = undefined;
    let se = 0, sx = 0, n = 0;
    for (const t of tensors) {
      if (t.ggmlType === 'f32') continue;
      se += t.rmse ** 2 * t.count;
      sx += t.rms ** 2 * t.count;
      n += t.count;
    }
    const report: QuantizationReport = {
      ggmlType: wanted, bytes: statSync(out).size, quantizedValues: n, relativeRmse: sx > 0 ? Math.sqrt(se / sx) : 0, tensors,
    };
    onEvent({ type: 'done', out, bytes: report.bytes, elapsedMs: Date.now() - started, report });
    return report;
  } catch (err) {
    writer?.abort();
    throw err;
  } finally {
    base.close();
  }
}

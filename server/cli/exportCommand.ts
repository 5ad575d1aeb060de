// `qlora export gguf|ollama`: models and adapters for llama.cpp, Ollama and LM Studio, with
// the post-training quantization report (per tensor RMSE; perplexity on --report-text
// through llama.cpp where node-llama-cpp is installed). Other export targets register in
// EXPORT_TARGETS.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse, quantFrom, UsageError } from './common';
import { exportAxolotl, exportAxolotlUsage } from './exportAxolotl';
import { exportGguf, exportOllama, EXPORT_TYPES, findNodeLlamaCpp, perplexityOf, type ExportMode, type ExportType, type GgufExportEvent, type QuantizationReport } from '../engine/export';
import { MERGE_TARGETS, type MergeInto } from '../engine/merge/types';
import { readAdapter } from '../engine/lora/peft';
import { openBase } from '../engine/merge/baseReader';

const common = '[--model MODEL | --adapter DIR [--base MODEL]] [--type f32|f16|bf16|q8_0|q4_0|q4_1] [--into dequantized|original] ' +
  '[--quantization nf4|fp4] [--block-size N] [--no-double-quant] [--report-text FILE] [--name NAME] [--force] [--json]';
export const exportUsage = `qlora export gguf --out FILE.gguf ${common} [--lora-only | --base-only]\n` +
  `            qlora export ollama --out DIR ${common} [--lora-only]\n` +
  `            ${exportAxolotlUsage}`;

const options = {
  out: { type: 'string' }, model: { type: 'string' }, adapter: { type: 'string' }, base: { type: 'string' }, type: { type: 'string' },
  into: { type: 'string' }, quantization: { type: 'string' }, 'block-size': { type: 'string' }, 'no-double-quant': { type: 'boolean' },
  'lora-only': { type: 'boolean' }, 'base-only': { type: 'boolean' }, 'report-text': { type: 'string' }, name: { type: 'string' },
  force: { type: 'boolean' }, json: { type: 'boolean' },
} as const;

type Values = ReturnType<typeof parse<typeof options>>['values'];

/** Subcommands of `qlora export`; another target adds itself here. */
export const EXPORT_TARGETS: Record<string, (args: string[]) => Promise<void>> = {
  gguf: (args) => run('gguf', args),
  ollama: (args) => run('ollama', args),
  axolotl: exportAxolotl,
};

export async function exportCommand(args: string[]): Promise<void> {
  const [target, ...rest] = args;
  const fn = target ? EXPORT_TARGETS[target] : undefined;
  if (!fn) throw new UsageError(`export what? ${Object.keys(EXPORT_TARGETS).join(' | ')}${target ? ` (got '${target}')` : ''}`);
  await fn(rest);
}

function checked(v: Values) {
  if (!v.out) throw new UsageError('--out is required');
  if (!v.model && !v.adapter) throw new UsageError('--model MODEL or --adapter DIR is required');
  if (v.type !== undefined && !(EXPORT_TYPES as readonly string[]).includes(v.type)) throw new UsageError(`--type must be ${EXPORT_TYPES.join(', ')} (got '${v.type}')`);
  if (v.into !== undefined && !(MERGE_TARGETS as readonly string[]).includes(v.into)) throw new UsageError(`--into must be ${MERGE_TARGETS.join(' or ')} (got '${v.into}')`);
  if (v['lora-only'] && v['base-only']) throw new UsageError('--lora-only and --base-only exclude each other');
  const overridesQuant = v.quantization !== undefined || v['block-size'] !== undefined || v['no-double-quant'];
  let recorded;
  if (overridesQuant && v.adapter) {
    try {
      recorded = readAdapter(resolve(v.adapter)).baseQuantization;
    } catch {
      recorded = undefined; // the export reports an unreadable adapter itself
    }
  }
  return {
    out: v.out, model: v.model, adapter: v.adapter, base: v.base, type: v.type as ExportType | undefined, into: v.into as MergeInto | undefined,
    quantization: overridesQuant ? quantFrom(v, recorded) : undefined, name: v.name, force: !!v.force,
  };
}

async function run(target: 'gguf' | 'ollama', args: string[]): Promise<void> {
  const { values: v } = parse(args, options);
  const opts = checked(v);
  if (target === 'ollama' && v['base-only']) throw new UsageError('export ollama: --base-only is for gguf; use --lora-only for base.gguf + adapter.gguf');
  const json = !!v.json;
  const print = json ? (e: object) => process.stdout.write(JSON.stringify(e) + '\n') : humanPrinter();
  let text: string | undefined;
  if (v['report-text']) {
    try {
      text = readFileSync(v['report-text'], 'utf8');
    } catch (e) {
      throw new Error(`${v['report-text']}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  try {
    let files: { model: string; lora?: string; report: QuantizationReport }[];
    if (target === 'gguf') {
      const mode: ExportMode = v['lora-only'] ? 'lora-only' : v['base-only'] ? 'base-only' : 'merged';
      const report = await exportGguf({ ...opts, mode }, print);
      files = mode === 'lora-only' ? [] : [{ model: resolve(opts.out), report }];
    } else {
      const r = await exportOllama({ ...opts, separateAdapter: !!v['lora-only'] }, print);
      files = [{ model: r.files[0], lora: v['lora-only'] ? r.files[1] : undefined, report: r.reports[0] }];
      print({ type: 'ollama', out: r.out, files: r.files });
    }
    if (text !== undefined) {
      if (!findNodeLlamaCpp()) {
        print({ type: 'log', message: 'perplexity: skipped, llama.cpp is not available (npm i -D -E node-llama-cpp@3.21.1)' });
      } else if (files.length === 0) {
        print({ type: 'log', message: 'perplexity: a LoRA GGUF alone is no model; export the base too (--base-only) to measure it' });
      } else {
        const base = await openBase(resolve(v.model ?? opts.base ?? basePathOf(v.adapter!)));
        const ids = base.tokenizer.encode(text, { bos: true });
        const window = base.config.maxPositionEmbeddings;
        base.close();
        for (const f of files) {
          const p = await perplexityOf(f.model, ids, Math.min(window, 2048), { lora: f.lora });
          print({ type: 'perplexity', file: f.model, lora: f.lora ?? null, ggmlType: f.report.ggmlType, ...p });
        }
      }
    }
  } catch (e) {
    if (json) process.stdout.write(JSON.stringify({ type: 'error', message: (e as Error).message }) + '\n');
    throw e;
  }
}

function basePathOf(adapter: string): string {
  const a = readAdapter(resolve(adapter));
  return a.basePath ?? resolve(adapter, a.baseModel);
}

function humanPrinter(): (e: object) => void {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;
  return (raw) => {
    const e = raw as GgufExportEvent | { type: 'perplexity'; file: string; tokens: number; perplexity: number; loss: number } | { type: 'ollama'; out: string; files: string[] };
    switch (e.type) {
      case 'start': {
        const q = e.quantization;
        process.stdout.write(`exporting ${e.adapter ?? e.base} (${e.mode}${e.adapter && e.mode === 'merged' ? `, merged into the ${e.into} base` : ''}` +
          `${q ? `, ${q.quantization.toUpperCase()}-dequantized projections` : ''}) as ${e.ggmlType}: ${e.tensors} tensors, ${mib(e.totalBytes)}\n`);
        break;
      }
      case 'log':
        process.stdout.write(`${e.message}\n`);
        break;
      case 'done': {
        const r = e.report;
        process.stdout.write(`wrote ${e.out} (${mib(e.bytes)} in ${(e.elapsedMs / 1000).toFixed(1)} s)\n`);
        const lossy = r.tensors.filter((t) => t.ggmlType !== 'f32').sort((a, b) => b.rmse / (b.rms || 1) - a.rmse / (a.rms || 1));
        if (lossy.length) {
          process.stdout.write(`quantization error (${r.quantizedValues} values in lossy types): relative RMSE ${r.relativeRmse.toExponential(3)}; largest:\n`);
          for (const t of lossy.slice(0, 8)) {
            process.stdout.write(`  ${t.gguf.padEnd(28)} ${t.ggmlType.padEnd(5)} RMSE ${t.rmse.toExponential(3)}  relative ${(t.rmse / (t.rms || 1)).toExponential(3)}  max ${t.maxAbs.toExponential(3)}\n`);
          }
        }
        break;
      }
      case 'perplexity':
        process.stdout.write(`perplexity (llama.cpp) of ${e.file}: ${e.perplexity.toFixed(4)} over ${e.tokens} tokens (loss ${e.loss.toFixed(6)})\n`);
        break;
      case 'ollama':
        process.stdout.write(`Ollama folder ${e.out}: ollama create NAME -f ${e.out}/Modelfile\n`);
        break;
    }
  };
}

// `qlora export ollama`: a folder Ollama can create a model from: the GGUF file(s) and a
// Modelfile. By default one merged model.gguf; with `separateAdapter`, the base the adapter
// trained on (base.gguf, NF4-dequantized for a QLoRA adapter) and the adapter as a llama.cpp
// LoRA GGUF (adapter.gguf) under FROM and ADAPTER, which Ollama loads through llama.cpp.
// (Ollama's own safetensors-adapter import reads alpha as an integer, ignores rsLoRA and
// permutes the wrong matrix for q/k, so the adapter goes as GGUF.) Everything is written in a
// temporary folder beside the output and renamed into place at the end.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { isNonEmptyDir, replaceDir, tempPathBeside } from '../formats/binaryFile';
import { openBase } from '../merge/baseReader';
import { readAdapter } from '../lora/peft';
import { exportGguf } from './exportGguf';
import { modelfile } from './modelfile';
import { ExportRefusedError, type GgufExportEvent, type GgufExportOptions, type QuantizationReport } from './types';

export interface OllamaExportOptions extends Omit<GgufExportOptions, 'mode'> {
  /** Base and adapter as two files (FROM + ADAPTER) instead of one merged model. */
  separateAdapter?: boolean;
}

export interface OllamaExportResult {
  out: string;
  files: string[];
  reports: QuantizationReport[];
}

export async function exportOllama(opts: OllamaExportOptions, onEvent: (e: GgufExportEvent) => void = () => {}): Promise<OllamaExportResult> {
  const out = resolve(opts.out);
  if (isNonEmptyDir(out) && !opts.force) throw new ExportRefusedError(`output ${out} already exists and is not empty: choose another folder, or replace it (--force)`);
  if (opts.separateAdapter && !opts.adapter) throw new ExportRefusedError('a separate adapter needs --adapter DIR');
  // The chat template comes from the base's tokenizer (opening it checks nothing is written yet).
  let basePath = opts.model ?? opts.base;
  if (!basePath && opts.adapter) {
    const a = readAdapter(resolve(opts.adapter));
    basePath = a.basePath ?? resolve(opts.adapter, a.baseModel);
  }
  const base = await openBase(resolve(basePath!)).catch((err) => { throw new ExportRefusedError(`base model: ${(err as Error).message}`); });
  const chatTemplate = base.tokenizer.chatTemplate;
  base.close();

  const temp = tempPathBeside(out);
  mkdirSync(temp, { recursive: true });
  try {
    const reports: QuantizationReport[] = [];
    const files: string[] = [];
    const one = async (name: string, mode: GgufExportOptions['mode']) => {
      reports.push(await exportGguf({ ...opts, out: join(temp, name), mode, force: false }, onEvent));
      files.push(name);
    };
    if (opts.separateAdapter) {
      await one('base.gguf', 'base-only');
      await one('adapter.gguf', 'lora-only');
    } else {
      await one('model.gguf', 'merged');
    }
    writeFileSync(join(temp, 'Modelfile'), modelfile({
      model: files[0], adapter: opts.separateAdapter ? files[1] : undefined, chatTemplate, source: opts.adapter ?? opts.model ?? '',
    }));
    files.push('Modelfile');
    if (isNonEmptyDir(out) && !opts.force) throw new ExportRefusedError(`output ${out} appeared while exporting and is not empty: nothing replaced`);
    mkdirSync(dirname(out), { recursive: true });
    replaceDir(temp, out);
    return { out, files: files.map((f) => join(out, f)), reports };
  } catch (err) {
    rmSync(temp, { recursive: true, force: true });
    throw err;
  }
}


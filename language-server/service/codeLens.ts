// The lenses above the first line: what the run will cost before it starts, and a
// command to start it (the extension binds `qlora.startTraining`).
import type { CodeLens } from 'vscode-languageserver';
import { bytesPerBaseParameter, estimateCost, formatBytes, formatCount } from '../../server/config';
import { baseModel, parsed, type QloraDocument } from './analysis';
import type { QloraSettings } from './settings';

/** The command the extension registers; its one argument is the document URI. */
export const START_TRAINING_COMMAND = 'qlora.startTraining';
export const EXPORT_AXOLOTL_COMMAND = 'qlora.exportAxolotl';

/** The wasm backend's heap stops near 3.9 GB (DESIGN.md); a run estimated past it is flagged. */
const WASM_HEAP_BYTES = 3.9e9;

export function codeLenses(doc: QloraDocument, uri: string, settings: QloraSettings): CodeLens[] {
  const { config } = parsed(doc);
  const range = { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };
  // A lens without a command id only shows its title: these are read-outs, not buttons.
  const info = (title: string, tooltip?: string): CodeLens => ({ range, command: { title, command: '', ...(tooltip ? { tooltip } : {}) } });
  const lenses: CodeLens[] = [];

  const model = baseModel(doc, settings);
  const q = config.model;
  const quantLabel = q.quantization === 'none' ? 'float32' : `${q.quantization}${q.double_quant ? ', double quant' : ''}, block ${q.block_size}`;
  const perParam = bytesPerBaseParameter(q);
  const perParamTooltip =
    q.quantization === 'none'
      ? 'float32: 4 bytes'
      : q.double_quant
        ? `0.5 + 1/${q.block_size} + 4/(${q.block_size}·256): 4-bit codes, an 8-bit absmax per block, a float32 scale per 256 absmax`
        : `0.5 + 4/${q.block_size}: 4-bit codes and a float32 absmax per block`;
  if (model) {
    const cost = estimateCost(model.config, config);
    lenses.push(info(`Trainable: ${formatCount(cost.trainableParameters)} params (${percent(cost.trainablePercent)} of ${formatCount(cost.totalParameters)})`));
    lenses.push(info(`Base weights: ${round(perParam)} bytes/param (${quantLabel})`, perParamTooltip));
    const plan = cost.memory.plan;
    // The engine's plan, part by part: the same figures its pre-flight checks.
    const tooltip = [
      ...[...plan.parts].sort((a, b) => b.bytes - a.bytes).map((p) => `${p.label} ${formatBytes(p.bytes)}${p.where === 'host' ? ' (host)' : ''}`),
      `compute heap peak ${formatBytes(plan.heapPeak)}${plan.wasmHeapLimit ? ` of the wasm heap's ${formatBytes(plan.wasmHeapLimit)}` : ''}`,
      `loading peak ${formatBytes(plan.loadPeak)}`,
    ].join('\n');
    const overWasm = plan.overWasmHeap ? ` (over the wasm heap limit: heap ${formatBytes(plan.heapPeak)})` : '';
    lenses.push(info(`Peak memory ≈ ${formatBytes(cost.memory.total)}${overWasm}`, tooltip));
  } else {
    lenses.push(info(`Base weights: ${round(perParam)} bytes/param (${quantLabel})`, perParamTooltip));
    lenses.push(info('Cost: needs a readable model.base'));
  }
  lenses.push({ range, command: { title: '▶ Start training', command: START_TRAINING_COMMAND, arguments: [uri] } });
  lenses.push({ range, command: { title: 'Export for Axolotl...', command: EXPORT_AXOLOTL_COMMAND, arguments: [uri] } });
  return lenses;
}

function percent(p: number): string {
  return `${p >= 1 ? p.toFixed(1) : p.toPrecision(2)}%`;
}

function round(n: number): string {
  return String(Number(n.toFixed(4)));
}

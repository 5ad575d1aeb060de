import { DEFAULT_QUANTIZATION } from '../engine/quant/spec';
import { resolve } from 'node:path';
import { backendFrom, parse, print, UsageError } from './common';
import { readModelConfig } from '../engine/formats/modelFolder';
import { countParameters, LINEAR_MODULES, linearShape, type LlamaConfig } from '../engine/model/config';
import { QuantizedWeight } from '../engine/quant/quantizedWeight';
import { DenseWeight, type FrozenWeight } from '../engine/model/frozenLinear';

export const inspectUsage = 'qlora inspect MODEL [--json]';

export interface StorageFigure {
  /** Bytes held on the backend per quantized (projection) parameter, measured. */
  bytesPerQuantizedParam: number;
  /** Whole model: projections at that rate plus everything else in fp32. */
  totalBytes: number;
}

/**
 * Bytes per parameter measured from real weight stores: one block's seven projections
 * are built on the backend and their held bytes counted (every block has the same
 * shapes, and the size of a store does not depend on the values in it).
 */
export function measureStorage(c: LlamaConfig): Record<'none' | 'nf4' | 'nf4+double-quant' | 'fp4', StorageFigure> {
  const params = countParameters(c);
  const measure = (make: (shape: [number, number], data: Float32Array) => FrozenWeight): StorageFigure => {
    let bytes = 0, n = 0;
    for (const m of LINEAR_MODULES) {
      const shape = linearShape(c, m);
      const data = new Float32Array(shape[0] * shape[1]).fill(0.5);
      const w = make(shape, data);
      bytes += w.residentBytes();
      n += shape[0] * shape[1];
      w.dispose();
    }
    const perParam = bytes / n;
    return { bytesPerQuantizedParam: perParam, totalBytes: perParam * params.linear + 4 * params.other };
  };
  const q = (quantType: 'nf4' | 'fp4', doubleQuant: boolean) =>
    (shape: [number, number], data: Float32Array) => QuantizedWeight.fromHost({ shape, data }, { quantType, blockSize: DEFAULT_QUANTIZATION.blockSize, doubleQuant });
  return {
    none: measure((shape, data) => new DenseWeight(shape, data)),
    nf4: measure(q('nf4', false)),
    'nf4+double-quant': measure(q('nf4', true)),
    fp4: measure(q('fp4', true)),
  };
}

export async function inspectCommand(args: string[]): Promise<void> {
  const { values: v, positionals } = parse(args, { json: { type: 'boolean' }, backend: { type: 'string' } }, true);
  if (positionals.length !== 1) throw new UsageError('expected one MODEL folder');
  const dir = resolve(positionals[0]);
  const config = readModelConfig(dir);
  await backendFrom(v);
  const params = countParameters(config);
  const storage = measureStorage(config);
  const modules = LINEAR_MODULES.map((m) => ({ name: m, shape: linearShape(config, m) }));
  const result = { model: dir, config, parameters: params, linearModules: modules, storage };
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;
  const human = [
    `${dir}`,
    `  architecture  ${config.family}: ${config.numLayers} layers, hidden ${config.hiddenSize}, MLP ${config.intermediateSize}, ` +
      `${config.numHeads} heads (${config.numKvHeads} key/value), head ${config.headDim}, vocab ${config.vocabSize}, ` +
      `context ${config.maxPositionEmbeddings}, rope theta ${config.ropeTheta}, ${config.tieWordEmbeddings ? 'tied' : 'untied'} head`,
    `  parameters    ${params.total.toLocaleString('en-US')} (${params.linear.toLocaleString('en-US')} in projections, ` +
      `${params.other.toLocaleString('en-US')} embeddings/norms)`,
    `  linear modules (per layer, [out, in]):`,
    ...modules.map((m) => `    ${m.name.padEnd(10)} [${m.shape.join(', ')}]`),
    `  storage (measured; projections quantized, the rest fp32):`,
    ...Object.entries(storage).map(([k, s]) =>
      `    ${k.padEnd(17)} ${s.bytesPerQuantizedParam.toFixed(4)} bytes/param  model ${mb(s.totalBytes)}`),
  ].join('\n');
  print(!!v.json, result, human);
}

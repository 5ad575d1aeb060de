// The base model of a merge, read one tensor at a time. A Hugging Face folder is read
// through its safetensors headers: each tensor is fetched by its byte offsets into a buffer
// the caller owns, so merging never holds more than the tensor at hand. A llama2.c
// checkpoint has no index and interleaves its layers by tensor kind, so it is read whole
// (these checkpoints are small; the merge says so in a log event).
import { closeSync, openSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { LlamaConfig } from '../model/config';
import { checkWeights, expectedWeightShapes, loadModel, locateModel } from '../formats/modelFolder';
import { parseHfConfig } from '../formats/hfConfig';
import { readSafetensorsHeader, readShardIndex, type SafetensorsEntry } from '../formats/safetensors';
import { readExactlyAt } from '../formats/binaryFile';
import { bfloat16BitsToFloat32, float16BitsToFloat32 } from '../formats/halfFloat';
import { ModelFormatError, type HostTensor, type WeightMap } from '../formats/types';
import { HuggingFaceTokenizer } from '../tokenizer/huggingface';
import type { Tokenizer } from '../tokenizer/types';

/** Elements converted per step when a stored dtype is not float32: bounds the temporary buffers. */
const CONVERT_CHUNK = 1 << 20;

export interface BaseTensorInfo {
  name: string;
  shape: number[];
  /** safetensors dtype as stored (F32, F16, BF16, F64); F32 for llama2.c. */
  dtype: string;
}

export interface BaseReader {
  /** Absolute folder of the model (the folder the output must stay out of). */
  dir: string;
  format: 'huggingface' | 'llama2c';
  config: LlamaConfig;
  tokenizer: Tokenizer;
  /** The model's parameters in its own order (tied head and inv_freq buffers dropped), shapes checked against the config. */
  tensors: BaseTensorInfo[];
  /** Bytes of weights held in memory before any tensor is read (a llama2.c checkpoint read whole), else 0. */
  residentBytes: number;
  /** Reads tensor `name` as float32 into `into` (at least as long as the tensor); returns the filled view. */
  read(name: string, into: Float32Array): Float32Array;
  close(): void;
}

const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Opens the base model: config, tokenizer and tensor list; weights stay on disk (Hugging Face). */
export async function openBase(path: string): Promise<BaseReader> {
  const loc = locateModel(path);
  if (loc.format === 'llama2c') return wholeModelReader(path);

  let configJson: Record<string, unknown>;
  try {
    configJson = JSON.parse(readFileSync(loc.configFile, 'utf8'));
  } catch (err) {
    throw new ModelFormatError(loc.configFile, `cannot read as JSON (${(err as Error).message})`);
  }
  const config = parseHfConfig(configJson, loc.configFile);
  const tokenizer = HuggingFaceTokenizer.fromFolder(loc.dir, configJson);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new ModelFormatError(join(loc.dir, 'tokenizer.json'), `has ${tokenizer.vocabSize} tokens but config.json vocab_size is ${config.vocabSize}`);
  }

  // name -> (file, header entry, absolute data start)
  const where = new Map<string, { file: string; entry: SafetensorsEntry; dataStart: number }>();
  const files = loc.sharded ? [...new Set(readShardIndex(loc.weightsFile).values())].map((s) => join(loc.dir, s)) : [loc.weightsFile];
  for (const file of files) {
    const header = readSafetensorsHeader(file);
    for (const entry of header.entries) {
      if (where.has(entry.name)) throw new ModelFormatError(file, `tensor "${entry.name}" also appears in ${basename(where.get(entry.name)!.file)}`);
      where.set(entry.name, { file, entry, dataStart: header.dataStart });
    }
  }
  if (loc.sharded) {
    for (const [name, shard] of readShardIndex(loc.weightsFile)) {
      if (where.get(name)?.file !== join(loc.dir, shard)) {
        throw new ModelFormatError(loc.weightsFile, `tensor "${name}" is mapped to ${shard}, which does not contain it`);
      }
    }
  }
  // checkWeights reads only shapes: the same checks (and messages) loadModel applies, before any data is read.
  const shapes: WeightMap = new Map([...where].map(([name, w]) => [name, { shape: w.entry.shape, data: new Float32Array(0) }]));
  checkWeights(shapes, config, loc.weightsFile);
  const tensors = [...expectedWeightShapes(config).keys()].map((name) => {
    const e = where.get(name)!.entry;
    return { name, shape: [...e.shape], dtype: e.dtype };
  });

  const fds = new Map<string, number>();
  const fdOf = (file: string) => {
    let fd = fds.get(file);
    if (fd === undefined) {
      try {
        fd = openSync(file, 'r');
      } catch (err) {
        throw new ModelFormatError(file, `cannot open (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
      fds.set(file, fd);
    }
    return fd;
  };
  return {
    dir: loc.dir, format: 'huggingface', config, tokenizer, tensors, residentBytes: 0,
    read(name, into) {
      const w = where.get(name);
      if (!w) throw new Error(`base model has no tensor "${name}"`);
      return readEntryInto(fdOf(w.file), w.dataStart, w.entry, into, w.file);
    },
    close() {
      for (const fd of fds.values()) closeSync(fd);
      fds.clear();
    },
  };
}

/** One stored tensor into `into` as float32; non-float32 dtypes are widened a chunk at a time. */
function readEntryInto(fd: number, dataStart: number, e: SafetensorsEntry, into: Float32Array, file: string): Float32Array {
  const n = count(e.shape);
  if (into.length < n) throw new Error(`buffer of ${into.length} values cannot hold "${e.name}" (${n} values)`);
  const out = into.subarray(0, n);
  const position = dataStart + e.begin;
  if (e.dtype === 'F32') {
    readExactlyAt(fd, new Uint8Array(out.buffer, out.byteOffset, out.byteLength), position, file);
    return out;
  }
  const bytesPer = e.dtype === 'F64' ? 8 : 2;
  const chunk = new Uint8Array(Math.min(n, CONVERT_CHUNK) * bytesPer);
  for (let start = 0; start < n; start += CONVERT_CHUNK) {
    const len = Math.min(CONVERT_CHUNK, n - start);
    const bytes = chunk.subarray(0, len * bytesPer);
    readExactlyAt(fd, bytes, position + start * bytesPer, file);
    if (e.dtype === 'F64') {
      out.set(new Float64Array(bytes.buffer, 0, len), start);
    } else {
      const bits = new Uint16Array(bytes.buffer, 0, len);
      out.set(e.dtype === 'F16' ? float16BitsToFloat32(bits) : bfloat16BitsToFloat32(bits), start);
    }
  }
  return out;
}

/** llama2.c: the checkpoint read whole by the project's reader (row permutation of wq/wk included). */
async function wholeModelReader(path: string): Promise<BaseReader> {
  const m = await loadModel(path);
  const weights: WeightMap = m.weights;
  const tensors = [...expectedWeightShapes(m.config).keys()].map((name) => ({ name, shape: [...weights.get(name)!.shape], dtype: 'F32' }));
  const residentBytes = tensors.reduce((s, t) => s + 4 * count(t.shape), 0);
  return {
    dir: m.dir, format: 'llama2c', config: m.config, tokenizer: m.tokenizer, tensors, residentBytes,
    read(name, into) {
      const t: HostTensor | undefined = weights.get(name);
      if (!t) throw new Error(`base model has no tensor "${name}"`);
      const out = into.subarray(0, t.data.length);
      out.set(t.data);
      // Each tensor is read once: dropping it lets the collector free the checkpoint as the merge advances.
      weights.delete(name);
      return out;
    },
    close() {
      weights.clear();
    },
  };
}

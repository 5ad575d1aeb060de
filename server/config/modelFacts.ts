// What the config checks, completion, hover and the cost lens need to know about a base
// model, read cheaply (config.json or a llama2.c header, never the weights) and cached
// per folder until something in the folder changes.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { readModelConfig } from '../engine/formats/modelConfig';
import { ModelFormatError } from '../engine/formats/types';
import { LINEAR_MODULES, linearShape, type LinearModule, type LlamaConfig } from '../engine/model/config';

export type ModelFacts =
  | {
      ok: true;
      config: LlamaConfig;
      /** The linear projections this model has, in PEFT's names. */
      modules: LinearModule[];
      /** tokenizer_config.json carries a chat_template (needed by data.format: chat). */
      hasChatTemplate: boolean;
    }
  | { ok: false; problem: string };

const cache = new Map<string, { signature: string; facts: ModelFacts }>();

/** Facts about the model at `dir` (absolute; a folder or a llama2.c checkpoint), or why it cannot be loaded. */
export function modelFacts(dir: string): ModelFacts {
  const signature = folderSignature(dir);
  const hit = cache.get(dir);
  if (hit && hit.signature === signature) return hit.facts;
  const facts = readFacts(dir);
  cache.set(dir, { signature, facts });
  return facts;
}

function readFacts(dir: string): ModelFacts {
  let config: LlamaConfig;
  try {
    config = readModelConfig(dir);
  } catch (e) {
    // The config names the folder already; name only the file inside it that is wrong.
    if (e instanceof ModelFormatError) return { ok: false, problem: e.file === dir ? e.problem : `${relative(dir, e.file) || basename(e.file)}: ${e.problem}` };
    return { ok: false, problem: (e as Error).message };
  }
  const modules = LINEAR_MODULES.filter((m) => linearShape(config, m).every((d) => d > 0));
  return { ok: true, config, modules, hasChatTemplate: hasChatTemplate(dir) };
}

function hasChatTemplate(dir: string): boolean {
  if (existsSync(join(dir, 'chat_template.jinja'))) return true;
  try {
    const json = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as { chat_template?: unknown };
    return typeof json.chat_template === 'string' || Array.isArray(json.chat_template);
  } catch {
    return false;
  }
}

/**
 * Changes whenever a file in the folder is added, removed or rewritten: the folder's own
 * mtime alone misses a config.json edited in place.
 */
function folderSignature(dir: string): string {
  try {
    const self = statSync(dir);
    if (!self.isDirectory()) return `file:${self.mtimeMs}:${self.size}`; // a llama2.c checkpoint named directly
    const parts = [String(self.mtimeMs)];
    for (const name of readdirSync(dir).sort()) {
      try {
        const s = statSync(join(dir, name));
        parts.push(`${name}:${s.mtimeMs}:${s.size}`);
      } catch {
        parts.push(`${name}:gone`);
      }
    }
    return parts.join('|');
  } catch (e) {
    return `unreadable:${(e as NodeJS.ErrnoException).code ?? ''}`;
  }
}

// The three JSONL record shapes a data file may hold, checked line by line so that a
// bad line is reported as `file:line: reason` before any tokenization:
//   text    {"text": "..."}
//   alpaca  {"instruction": "...", "input": "...", "output": "...", "system": "..."}
//           (input and system optional; the field names of Stanford Alpaca's data)
//   chat    {"messages": [{"role": "user", "content": "..."}, ...]}
//           (the OpenAI / Hugging Face messages layout that chat templates consume)
import { DataError, type DataFormat } from './types';

export interface TextRecord { format: 'text'; line: number; text: string }
export interface AlpacaRecord {
  format: 'alpaca';
  line: number;
  instruction: string;
  input: string;
  output: string;
  system?: string;
}
export interface ChatMessage { role: string; content: string }
export interface ChatRecord { format: 'chat'; line: number; messages: ChatMessage[] }
export type DataRecord = TextRecord | AlpacaRecord | ChatRecord;

/** Parses every non-blank line of a JSONL file; `file` only names it in errors. */
export function parseJsonl(text: string, file: string, format: DataFormat): DataRecord[] {
  const records: DataRecord[] = [];
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const source = lines[i].trim();
    if (source === '') continue;
    const line = i + 1;
    const fail = (reason: string): never => { throw new DataError(file, line, reason); };
    let value: unknown;
    try {
      value = JSON.parse(source);
    } catch (e) {
      fail(`invalid JSON (${(e as Error).message})`);
    }
    if (!isObject(value)) fail(`expected a JSON object, got ${typeName(value)}`);
    records.push(parseRecord(value as Record<string, unknown>, format, line, fail));
  }
  return records;
}

function parseRecord(
  obj: Record<string, unknown>, format: DataFormat, line: number, fail: (reason: string) => never,
): DataRecord {
  const str = (key: string, required: boolean): string | undefined => {
    const v = obj[key];
    if (v === undefined || v === null) return required ? fail(`missing field "${key}"`) : undefined;
    if (typeof v !== 'string') fail(`field "${key}" must be a string, got ${typeName(v)}`);
    return v as string;
  };
  switch (format) {
    case 'text': {
      const text = str('text', true)!;
      // An empty text would teach the model to end right after BOS.
      if (text === '') fail('field "text" is empty');
      return { format, line, text };
    }
    case 'alpaca': {
      const rec: AlpacaRecord = {
        format, line,
        instruction: str('instruction', true)!,
        input: str('input', false) ?? '',
        output: str('output', true)!,
      };
      const system = str('system', false);
      if (system !== undefined) rec.system = system;
      return rec;
    }
    case 'chat':
      return { format, line, messages: parseMessages(obj.messages, fail) };
  }
}

function parseMessages(value: unknown, fail: (reason: string) => never): ChatMessage[] {
  if (value === undefined || value === null) fail('missing field "messages"');
  if (!Array.isArray(value)) fail(`field "messages" must be an array, got ${typeName(value)}`);
  const list = value as unknown[];
  if (list.length === 0) fail('field "messages" is empty');
  const messages = list.map((m, i): ChatMessage => {
    if (!isObject(m)) fail(`messages[${i}] must be an object, got ${typeName(m)}`);
    const { role, content } = m as Record<string, unknown>;
    if (role === undefined) fail(`messages[${i}]: missing field "role"`);
    if (typeof role !== 'string') fail(`messages[${i}].role must be a string, got ${typeName(role)}`);
    if (content === undefined) fail(`messages[${i}]: missing field "content"`);
    if (typeof content !== 'string') fail(`messages[${i}].content must be a string, got ${typeName(content)}`);
    return { role: role as string, content: content as string };
  });
  // Supervised chat data trains the assistant turns; without one the line is almost
  // certainly in another layout (ShareGPT's from/value, say) or cut short.
  if (!messages.some((m) => m.role === 'assistant')) fail('field "messages" has no "assistant" message');
  return messages;
}

function isObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

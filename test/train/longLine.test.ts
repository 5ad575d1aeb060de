// One huge JSONL line costs what max_seq_len allows, not what the line holds (issue 20,
// finding 9): a single 40 MiB line used to be tokenized whole before the cut to
// max_seq_len + 1 tokens, for minutes and gigabytes. The tokenizer (the real one of a small
// llama2.c model, watched) must never be handed more than the text budget, and the example
// must come out the same as tokenizing the whole line and cutting it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { shipLogs } from '../../server/demo/corpus';
import { writeTinyModel, TINY_MODEL } from '../../server/demo/tinyModel';
import { loadModel } from '../../server/engine/formats/modelFolder';
import { buildExamples } from '../../server/engine/train/data';
import { MAX_CHARS_PER_TOKEN } from '../../server/engine/train/textBudget';
import type { Tokenizer } from '../../server/engine/tokenizer/types';

test('a 300 KB line (text and alpaca) is tokenized only up to its budget, and gives the same example as a whole-line tokenization', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-longline-'));
  try {
    const llama = join(dir, 'model');
    writeTinyModel(llama, shipLogs(40, 1), { ...TINY_MODEL, nLayers: 1, dim: 32, hiddenDim: 64 });
    const { tokenizer } = await loadModel(llama);
    const seen: number[] = [];
    const watched: Tokenizer = Object.create(tokenizer, {
      encode: { value: (text: string, o?: unknown) => { seen.push(text.length); return (tokenizer.encode as (t: string, o?: unknown) => number[])(text, o); } },
    });
    const long = shipLogs(4000, 7).join(' ').slice(0, 300_000);
    const maxSeqLen = 300; // room for the alpaca prompt (about 170 tokens of this small vocabulary)
    const budget = (maxSeqLen + 1) * MAX_CHARS_PER_TOKEN; // plus the few characters of the alpaca template
    for (const [format, line] of [
      ['text', JSON.stringify({ text: long })],
      ['alpaca', JSON.stringify({ instruction: 'Summarise', input: 'the log', output: long })],
    ] as const) {
      seen.length = 0;
      const short = JSON.stringify(format === 'text' ? { text: 'Day 1. calm seas.' } : { instruction: 'Summarise', input: '', output: 'calm' });
      const { examples, stats } = buildExamples(`${line}\n${short}\n`, join(dir, `${format}.jsonl`), watched, { format, maxSeqLen, seed: 1 });
      assert.ok(Math.max(...seen) <= budget + 400, `${format}: the tokenizer got ${Math.max(...seen)} characters at once (budget ${budget})`);
      assert.equal(examples[0].ids.length, maxSeqLen + 1);
      assert.equal(stats.truncated, 1);
      if (format === 'text') {
        const whole = [...tokenizer.encode(long, { bos: true })].slice(0, maxSeqLen + 1);
        assert.deepEqual([...examples[0].ids], whole, 'the kept tokens are those of the whole line');
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// New Fine-Tune Config: the scaffolded text parses without a problem, documents every key
// and points at what was picked.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parse } from '../../server/config';
import { ALL_KEYS } from '../../server/config/schema';
import { guessFormat, SCAFFOLD_MAX_STEPS, scaffoldConfig } from '../../extension/scaffold';

describe('config scaffold', () => {
  const text = scaffoldConfig({ model: './models/tiny', data: './data/train.jsonl', format: 'alpaca', outputDir: './runs/train' });

  test('parses with no errors, and the picked values are the parsed ones', () => {
    const { config, diagnostics } = parse(text, '/work/project');
    assert.deepEqual(diagnostics.filter((d) => d.severity === 'error'), []);
    assert.equal(config.model.base, '/work/project/models/tiny');
    assert.equal(config.data.train, '/work/project/data/train.jsonl');
    assert.equal(config.data.format, 'alpaca');
    assert.equal(config.output.dir, '/work/project/runs/train');
  });

  test('every schema key appears, with its description as a comment', () => {
    for (const k of ALL_KEYS) {
      assert.match(text, new RegExp(`^  (# )?${k.name}:`, 'm'), k.path);
      assert.ok(text.includes(`# ${k.spec.description}`), k.path);
    }
  });

  test('uncommenting max_steps (as the epochs comment invites) gives a valid config that uses it', () => {
    const uncommented = text.replace(/^  # max_steps: (\d+)$/m, '  max_steps: $1');
    assert.notEqual(uncommented, text, 'the scaffold offers a commented max_steps with a value');
    const { config, diagnostics } = parse(uncommented, '/work/project');
    assert.deepEqual(diagnostics.filter((d) => d.severity === 'error'), []);
    assert.equal(config.training.max_steps, SCAFFOLD_MAX_STEPS);
    // And uncommenting epochs instead is valid too.
    const epochs = parse(text.replace(/^  # epochs: (\d+)$/m, '  epochs: $1'), '/work/project');
    assert.deepEqual(epochs.diagnostics.filter((d) => d.severity === 'error'), []);
  });

  test('max_seq_len is capped at the model\'s context', () => {
    const short = scaffoldConfig({ model: './m', data: './d.jsonl', format: 'text', outputDir: './runs/x', contextLength: 128 });
    assert.equal(parse(short, '/p').config.data.max_seq_len, 128);
    const long = scaffoldConfig({ model: './m', data: './d.jsonl', format: 'text', outputDir: './runs/x', contextLength: 4096 });
    assert.equal(parse(long, '/p').config.data.max_seq_len, 256);
  });

  test('paths that YAML would misread are quoted', () => {
    const odd = scaffoldConfig({ model: './my: model', data: '../data #1.jsonl', format: 'text', outputDir: './runs/x' });
    const { config, diagnostics } = parse(odd, '/p/q');
    assert.deepEqual(diagnostics.filter((d) => d.severity === 'error'), []);
    assert.equal(config.model.base, '/p/q/my: model');
    assert.equal(config.data.train, '/p/data #1.jsonl');
  });

  test('the data format is guessed from the first line', () => {
    assert.equal(guessFormat('{"messages": [{"role": "user", "content": "hi"}]}'), 'chat');
    assert.equal(guessFormat('{"instruction": "say hi", "output": "hi"}'), 'alpaca');
    assert.equal(guessFormat('{"text": "hello"}'), 'text');
    assert.equal(guessFormat('not json'), 'text');
    assert.equal(guessFormat(undefined), 'text');
  });
});

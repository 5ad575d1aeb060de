// New Fine-Tune Config: the scaffolded text parses without a problem, documents every key
// and points at what was picked.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parse } from '../../server/config';
import { ALL_KEYS } from '../../server/config/schema';
import { guessFormat, scaffoldConfig } from '../../extension/scaffold';

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

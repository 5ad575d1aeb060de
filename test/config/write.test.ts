// configText writes what parse reads back: same values, schema order, no diagnostics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configText } from '../../server/config/write';
import { parse } from '../../server/config/parse';

test('configText round-trips through parse, in the schema order, and refuses unknown keys', () => {
  const text = configText({
    output: { dir: './out' },
    training: { seed: 7, max_steps: 5, learning_rate: 3e-4 },
    lora: { r: 4, alpha: 8, target_modules: ['q_proj', 'v_proj'] },
    model: { base: './model dir', quantization: 'fp4' },
    data: { train: './t.jsonl' },
  }, 'a comment');
  assert.ok(text.startsWith('# a comment\nmodel:\n'));
  assert.ok(text.indexOf('lora:') < text.indexOf('data:') && text.indexOf('max_steps') < text.indexOf('seed'));
  const { config, diagnostics } = parse(text, '/w');
  assert.deepEqual(diagnostics.filter((d) => d.severity === 'error'), []);
  assert.equal(config.model.base, '/w/model dir');
  assert.equal(config.model.quantization, 'fp4');
  assert.deepEqual(config.lora.target_modules, ['q_proj', 'v_proj']);
  assert.equal(config.training.learning_rate, 3e-4);
  assert.equal(config.training.max_steps, 5);
  assert.equal(config.output.dir, '/w/out');
  assert.throws(() => configText({ lora: { rank: 4 } as never }), /lora\.rank is not a key/);
});

// The quantization spec is declared once (server/engine/quant/spec.ts): the .qlora schema,
// the CLI's flags, the quantizer and merge's checks all apply its one block-size rule and
// list of types, so the same value gets the same answer everywhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from '../../server/config/parse';
import { SCHEMA } from '../../server/config/schema';
import { bytesPerBaseParameter } from '../../server/config/cost';
import { BLOCK_SIZE_RULE, BLOCK_SIZES, bytesPerParameter, checkQuantization, isBlockSize, QUANTIZATIONS } from '../../server/engine/quant/spec';
import { QuantizedWeight } from '../../server/engine/quant/quantizedWeight';
import { quantFrom, UsageError } from '../../server/cli/common';
import { qlora } from '../helpers/cli';
import { initBackend } from '../../server/engine/backend';
import { randomWeight } from '../helpers/weights';
import { writeTinyModel, TINY_MODEL } from '../../server/demo/tinyModel';
import { shipLogs } from '../../server/demo/corpus';

const configWith = (blockSize: number) =>
  `model:\n  base: ./m\n  block_size: ${blockSize}\ndata:\n  train: ./d.jsonl\n`;
const blockSizeErrors = (blockSize: number) =>
  parse(configWith(blockSize), '/nowhere').diagnostics.filter((d) => d.severity === 'error' && /block_size/.test(d.message));

test('one block-size rule: the schema, the CLI flags, the quantizer and the spec agree on every size from 1 to 8192', async () => {
  await initBackend('cpu');
  for (let b = 1; b <= 8192; b++) {
    const ok = isBlockSize(b);
    const powerOfTwo = (b & (b - 1)) === 0;
    if (!powerOfTwo && b % 7 !== 0) continue; // every power of two, and a sample of the rest
    assert.equal(blockSizeErrors(b).length === 0, ok, `block_size: ${b} in a .qlora`);
    const flag = () => quantFrom({ quantization: 'nf4', 'block-size': String(b) });
    if (ok) assert.equal(flag().blockSize, b); else assert.throws(flag, UsageError, `--block-size ${b}`);
    const quantize = () => QuantizedWeight.fromHost(randomWeight(4, 64, 1), { quantType: 'nf4', blockSize: b, doubleQuant: false }).dispose();
    if (ok) quantize(); else assert.throws(quantize, /blockSize must be/, `quantizer at ${b}`);
    assert.equal(checkQuantization({ quantization: 'nf4', blockSize: b }) === undefined, ok);
  }
  assert.deepEqual(BLOCK_SIZES, [32, 64, 128, 256, 512, 1024, 2048, 4096]);
  assert.match(blockSizeErrors(16)[0].message, /power of two from 32 to 4096/);
  assert.throws(() => quantFrom({ quantization: 'nf4', 'block-size': '16' }), new RegExp(BLOCK_SIZE_RULE));
});

test('qlora eval --block-size 16 and block_size: 16 give the same answer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-spec-'));
  try {
    writeTinyModel(join(dir, 'm'), shipLogs(40, 1), { ...TINY_MODEL, nLayers: 1 });
    writeFileSync(join(dir, 'text.txt'), shipLogs(2, 5).join('\n'));
    const r16 = qlora(['eval', '--model', join(dir, 'm'), '--quantization', 'nf4', '--block-size', '16', '--text', join(dir, 'text.txt')]);
    assert.equal(r16.code, 2, r16.stderr);
    assert.match(r16.stderr, /--block-size must be a power of two from 32 to 4096 \(got '16'\)/);
    assert.match(blockSizeErrors(16)[0].message, /model\.block_size must be a power of two from 32 to 4096, got 16/);
    const r32 = qlora(['eval', '--model', join(dir, 'm'), '--quantization', 'nf4', '--block-size', '32', '--text', join(dir, 'text.txt'), '--json']);
    assert.equal(r32.code, 0, r32.stderr);
    assert.equal(blockSizeErrors(32).length, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the schema's quantization values are the spec's list, and the cost lens's bytes are the spec's", () => {
  assert.deepEqual(Object.keys(SCHEMA.model.keys.quantization.values).sort(), [...QUANTIZATIONS].sort());
  for (const quantization of QUANTIZATIONS) {
    for (const block_size of BLOCK_SIZES) {
      for (const double_quant of [false, true]) {
        assert.equal(bytesPerBaseParameter({ quantization, block_size, double_quant }),
          bytesPerParameter({ quantization, blockSize: block_size, doubleQuant: double_quant }));
      }
    }
  }
  assert.equal(bytesPerParameter({ quantization: 'nf4', blockSize: 64, doubleQuant: true }), 0.515869140625);
});

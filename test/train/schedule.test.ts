import assert from 'node:assert/strict';
import { test } from 'node:test';
import { learningRateAt, type LrScheduler } from '../../server/engine/train/schedule';

// Expected values computed in Python with the lambdas of transformers' optimization.py
// (get_{constant,linear,cosine}_schedule_with_warmup), lr 2e-4, 10 warmup of 100 steps.
const at = (scheduler: LrScheduler, step: number, warmupSteps = 10, totalSteps = 100) =>
  learningRateAt(step, { learningRate: 2e-4, scheduler, warmupSteps, totalSteps });
const close = (actual: number, expected: number) =>
  assert.ok(Math.abs(actual - expected) <= 1e-15 * Math.abs(expected) + 1e-300, `${actual} vs ${expected}`);

test('warmup is linear from 0 (the first update uses lr 0), shared by all schedules', () => {
  for (const s of ['constant', 'linear', 'cosine'] as const) {
    assert.equal(at(s, 0), 0);
    close(at(s, 1), 2e-5);
    close(at(s, 5), 1e-4);
    close(at(s, 10), 2e-4);
  }
});

test('constant stays at the base rate', () => {
  assert.equal(at('constant', 50), 2e-4);
  assert.equal(at('constant', 1000, 10, 0), 2e-4);
  assert.equal(at('constant', 0, 0), 2e-4);
});

test('linear decays to 0 at totalSteps', () => {
  close(at('linear', 11), 0.00019777777777777778);
  close(at('linear', 32), 0.0001511111111111111);
  close(at('linear', 55), 1e-4);
  close(at('linear', 99), 2.2222222222222225e-6);
  assert.equal(at('linear', 100), 0);
  assert.equal(at('linear', 150), 0);
  // totalSteps <= warmupSteps: transformers' max(1, S - W) gives 0 after warmup.
  assert.equal(at('linear', 10, 10, 5), 0);
});

test('cosine follows half a cosine to 0 and stays there', () => {
  close(at('cosine', 11), 0.0001999390827019096);
  close(at('cosine', 32), 0.0001719339800338651);
  close(at('cosine', 55), 1e-4);
  close(at('cosine', 99), 6.09172980904238e-8);
  assert.equal(at('cosine', 100), 0);
  assert.equal(at('cosine', 150), 0);
  assert.equal(at('cosine', 0, 0), 2e-4);
});

test('bad arguments are refused', () => {
  assert.throws(() => at('cosine', -1), /step/);
  assert.throws(() => at('cosine', 20, 10, 0), /totalSteps/);
  assert.throws(() => at('linear', 5, 1.5), /warmupSteps/);
});

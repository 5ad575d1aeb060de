import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Batcher, makeBatch, sequentialBatches, type BatchPosition } from '../../server/engine/train/batching';
import type { Example } from '../../server/engine/train/types';

const ex = (ids: number[], mask: number[]): Example => ({ ids: Int32Array.from(ids), mask: Uint8Array.from(mask) });
/** Ten examples told apart by their second token, 100 + i, and of varied lengths. */
const examples = Array.from({ length: 10 }, (_, i) =>
  ex([1, 100 + i, ...Array(i % 3).fill(7), 2], [0, 1, ...Array(i % 3).fill(1), 1]));
const opts = { microBatchSize: 3, maxSeqLen: 8, padId: 0, seed: 42 };
const idsOf = (b: { inputs: Int32Array; shape: [number, number] }) =>
  Array.from({ length: b.shape[0] }, (_, r) => b.inputs[r * b.shape[1] + 1] - 100);

describe('makeBatch', () => {
  const e1 = ex([1, 10, 11, 2], [0, 1, 1, 1]);
  const e2 = ex([1, 20, 2], [0, 0, 1]);

  test('inputs, shifted targets and weights, right-padded to the longest row', () => {
    const b = makeBatch([e1, e2], { microBatchSize: 2, maxSeqLen: 8, padId: 0 });
    assert.deepEqual(b.shape, [2, 3]);
    assert.deepEqual([...b.inputs], [1, 10, 11, 1, 20, 0]);
    assert.deepEqual([...b.targets], [10, 11, 2, 20, 2, 0]);
    assert.deepEqual([...b.weights], [1, 1, 1, 0, 1, 0]);
    assert.equal(b.tokens, 5);
    assert.equal(b.targetCount, 4);
  });

  test("padTo 'max' pads to maxSeqLen with the pad id; rows never exceed it", () => {
    const b = makeBatch([e2], { microBatchSize: 1, maxSeqLen: 5, padId: 9, padTo: 'max' });
    assert.deepEqual(b.shape, [1, 5]);
    assert.deepEqual([...b.inputs], [1, 20, 9, 9, 9]);
    assert.deepEqual([...b.weights], [0, 1, 0, 0, 0]);
    const cut = makeBatch([e1], { microBatchSize: 1, maxSeqLen: 2, padId: 0 });
    assert.deepEqual(cut.shape, [1, 2]);
    assert.deepEqual([...cut.targets], [10, 11]);
  });

  test('sequentialBatches covers the examples once, in order', () => {
    const batches = [...sequentialBatches(examples, opts)];
    assert.deepEqual(batches.map((b) => b.shape[0]), [3, 3, 3, 1]);
    assert.deepEqual(batches.flatMap(idsOf), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

describe('Batcher', () => {
  const take = (b: Batcher, n: number) => Array.from({ length: n }, () => b.next());

  test('each epoch is a seeded permutation, reshuffled from epoch to epoch', () => {
    const b = new Batcher(examples, opts);
    assert.equal(b.batchesPerEpoch, 4);
    const epoch0 = take(b, 4);
    assert.deepEqual(epoch0.map((x) => x.shape[0]), [3, 3, 3, 1]);
    assert.ok(epoch0.every((x) => x.epoch === 0));
    assert.equal(b.position().epoch, 1);
    assert.equal(b.position().index, 0);
    const order0 = epoch0.flatMap(idsOf);
    const order1 = take(b, 4).flatMap(idsOf);
    assert.deepEqual([...order0].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual([...order1].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.notDeepEqual(order1, order0);
    assert.notDeepEqual(order0, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(take(new Batcher(examples, opts), 4).flatMap(idsOf), order0);
    assert.notDeepEqual(take(new Batcher(examples, { ...opts, seed: 43 }), 4).flatMap(idsOf), order0);
  });

  test('a batcher resumed from a saved position serves exactly the same next batches', () => {
    const reference = take(new Batcher(examples, opts), 13);
    for (const k of [0, 1, 3, 4, 5, 9]) {
      const first = new Batcher(examples, opts);
      take(first, k);
      const saved: BatchPosition = JSON.parse(JSON.stringify(first.position()));
      const resumed = new Batcher(examples, opts);
      resumed.next(); // its own state must not leak into the resumed order
      resumed.setPosition(saved);
      assert.deepEqual(take(resumed, 13 - k), reference.slice(k), `resumed after ${k} batches`);
    }
  });

  test('an impossible position is refused', () => {
    const b = new Batcher(examples, opts);
    assert.throws(() => b.setPosition({ epoch: 0, index: 10, rng: [1, 2, 3, 4] }), /invalid batch position/);
  });
});

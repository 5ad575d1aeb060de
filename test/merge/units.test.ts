// The pieces of a merge on their own: the in-place 4-bit round trip against the
// quantization reference (bit for bit), the LoRA delta against float64, and the streaming
// safetensors writer against writeSafetensorsSharded (byte for byte).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RoundTripBuffers, roundTrip4bitInPlace } from '../../server/engine/quant/roundTrip';
import { addLoraDelta } from '../../server/engine/merge/merge';
import { SafetensorsStreamWriter } from '../../server/engine/merge/safetensorsStream';
import { dequantizeWeightReference, quantizeWeight } from '../../server/engine/quant/quantizedWeight';
import { writeSafetensorsSharded, type SafetensorsDtype } from '../../server/engine/formats/safetensors';
import type { WeightMap } from '../../server/engine/formats/types';
import { Rng } from '../../server/engine/rng';

function normal(n: number, std: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => std * rng.normal());
}

test('4-bit round trip in place equals dequantizeWeightReference(quantizeWeight(w)) bit for bit', () => {
  const shapes: [number, number][] = [[64, 96], [37, 53], [300, 257]]; // partial last blocks; > 256 blocks for the nested absmax
  let cases = 0;
  const shared = new RoundTripBuffers(); // reused across sizes, as a merge does
  for (const quantType of ['nf4', 'fp4'] as const) {
    for (const doubleQuant of [true, false]) {
      for (const blockSize of [64, 128, 32]) {
        for (const [out, inp] of shapes) {
          const w = normal(out * inp, 0.02, cases + 1);
          w.fill(0, 128, 256); // a block of zeros: absmax 0
          w[5] = 0.5; // an outlier
          const opts = { quantType, blockSize, doubleQuant };
          const { data, state } = quantizeWeight({ shape: [out, inp], data: w }, opts);
          const want = dequantizeWeightReference(data, state);
          const got = Float32Array.from(w);
          roundTrip4bitInPlace(got, opts, cases % 2 ? shared : undefined);
          const gotBits = new Uint32Array(got.buffer), wantBits = new Uint32Array(want.buffer);
          const first = gotBits.findIndex((b, i) => b !== wantBits[i]);
          assert.equal(first, -1, `${quantType} bs ${blockSize} dq ${doubleQuant} [${out}, ${inp}]: first difference at ${first}: ${got[first]} vs ${want[first]}`);
          cases++;
        }
      }
    }
  }
  console.log(`# ${cases} cases identical`);
});

test('addLoraDelta: W + scaling * B A equals the float64 product to float32 rounding', () => {
  const [out, inp, r] = [48, 80, 8];
  const w = normal(out * inp, 0.05, 1);
  const A = normal(r * inp, 0.1, 2), B = normal(out * r, 0.1, 3);
  B.fill(0, 0, r); // a row with no update stays bit-identical
  const scaling = 16 / Math.sqrt(8);
  const merged = Float32Array.from(w);
  addLoraDelta(merged, { A: { shape: [r, inp], data: A }, B: { shape: [out, r], data: B } }, scaling);
  let worst = 0;
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inp; i++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += B[o * r + k] * A[k * inp + i];
      const want = w[o * inp + i] + scaling * s;
      worst = Math.max(worst, Math.abs(merged[o * inp + i] - want) / Math.max(Math.abs(want), 1e-30));
    }
  }
  assert.deepEqual(merged.subarray(0, inp), w.subarray(0, inp));
  assert.ok(worst <= 2 ** -24, `largest relative error ${worst}`);
});

test('streaming safetensors writer: same files, same bytes as writeSafetensorsSharded (single, sharded; F32, F16, BF16)', () => {
  const tensors: WeightMap = new Map();
  tensors.set('model.embed_tokens.weight', { shape: [40, 16], data: normal(640, 1, 4) });
  tensors.set('model.layers.0.self_attn.q_proj.weight', { shape: [16, 16], data: normal(256, 1, 5) });
  tensors.set('model.norm.weight', { shape: [16], data: normal(16, 1, 6) });
  tensors.set('lm_head.weight', { shape: [40, 16], data: normal(640, 1, 7) });
  for (const dtype of ['F32', 'F16', 'BF16'] as SafetensorsDtype[]) {
    for (const maxShardBytes of [1e9, 1500]) {
      const a = mkdtempSync(join(tmpdir(), 'qlora-st-a-'));
      const b = mkdtempSync(join(tmpdir(), 'qlora-st-b-'));
      try {
        writeSafetensorsSharded(a, tensors, { dtype, maxShardBytes });
        const w = new SafetensorsStreamWriter(b, [...tensors].map(([name, t]) => ({ name, shape: t.shape })), dtype, maxShardBytes);
        for (const [name, t] of tensors) w.write(name, t.data);
        w.finish();
        const files = readdirSync(a).sort();
        assert.deepEqual(readdirSync(b).sort(), files, `${dtype} ${maxShardBytes}`);
        if (maxShardBytes < 1e9) assert.ok(files.length > 2, 'sharded');
        for (const f of files) assert.ok(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), `${dtype} ${maxShardBytes} ${f}`);
      } finally {
        rmSync(a, { recursive: true, force: true });
        rmSync(b, { recursive: true, force: true });
      }
    }
  }
});

test('streaming writer: tensors out of plan order are refused; float16 overflow is counted', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-st-'));
  try {
    const w = new SafetensorsStreamWriter(dir, [{ name: 'a', shape: [2] }, { name: 'b', shape: [3] }], 'F16', 1e9);
    assert.throws(() => w.write('b', new Float32Array(3)), /out of order/);
    w.write('a', Float32Array.of(70000, Infinity));
    assert.equal(w.overflows.get('a'), 1, 'a finite 70000 overflows; an infinity was already one');
    w.abort();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Backend choice at run time: what loads is reported; a forced backend that cannot load
// says how to get it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackendUnavailableError, initBackend } from '../../server/engine/backend';
import { tf } from '../../server/engine/tf';

// First: the process has chosen no backend yet.
test('auto picks the first backend that loads: tensorflow where installed, else wasm', async () => {
  let installed = true;
  try { require.resolve('@tensorflow/tfjs-node'); } catch { installed = false; }
  const r = await initBackend('auto');
  assert.equal(r.backend, installed ? 'tensorflow' : 'wasm');
});

test('wasm and cpu load and report their device', async () => {
  const w = await initBackend('wasm');
  assert.equal(w.backend, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  assert.match(w.device, /wasm/);
  const c = await initBackend('cpu');
  assert.equal(c.backend, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
});

test('forcing tensorflow where tfjs-node is not installed is a clear error saying how to install it', async (t) => {
  let installed = true;
  try { require.resolve('@tensorflow/tfjs-node'); } catch { installed = false; }
  if (installed) {
    t.skip('@tensorflow/tfjs-node is installed here, so the error path cannot be shown');
    console.log('# SKIP: @tensorflow/tfjs-node is installed here');
    return;
  }
  await assert.rejects(initBackend('tensorflow'), (e: Error) =>
    e instanceof BackendUnavailableError && /npm install @tensorflow\/tfjs-node-gpu/.test(e.message));
});

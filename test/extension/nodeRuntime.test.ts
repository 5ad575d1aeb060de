// Which Node runs the training server: the setting, else `node` on PATH, else the
// editor's own runtime as plain Node (ELECTRON_RUN_AS_NODE=1).
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { findOnPath, resolveNodeRuntime } from '../../extension/nodeRuntime';

const dir = mkdtempSync(join(tmpdir(), 'qlora-node-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const fakeNode = join(dir, 'bin', 'node');
writeFileSync(join(dir, 'not-executable'), '');

describe('node runtime', () => {
  test('an explicit setting wins, and must be an executable file', () => {
    const rt = resolveNodeRuntime(process.execPath, { PATH: '' }, '/editor/electron');
    assert.deepEqual(rt, { command: process.execPath, env: {}, source: 'setting' });
    assert.throws(() => resolveNodeRuntime(join(dir, 'not-executable'), { PATH: '' }), /not an executable file/);
    assert.throws(() => resolveNodeRuntime(join(dir, 'missing'), { PATH: '' }), /not an executable file/);
  });

  test('else node on PATH, the first one', () => {
    mkdirSync(join(dir, 'bin'), { recursive: true });
    writeFileSync(fakeNode, '#!/bin/sh\n');
    chmodSync(fakeNode, 0o755);
    const PATH = [join(dir, 'empty'), join(dir, 'bin'), '/usr/bin'].join(delimiter);
    assert.equal(findOnPath('node', PATH), fakeNode);
    assert.deepEqual(resolveNodeRuntime('', { PATH }, '/editor/electron'), { command: fakeNode, env: {}, source: 'PATH' });
    assert.deepEqual(resolveNodeRuntime('  ', { PATH }, '/editor/electron').source, 'PATH');
  });

  test('else the editor\'s own runtime, told to behave as Node', () => {
    assert.deepEqual(resolveNodeRuntime(undefined, { PATH: join(dir, 'empty') }, '/editor/electron'), {
      command: '/editor/electron', env: { ELECTRON_RUN_AS_NODE: '1' }, source: 'editor',
    });
  });
});

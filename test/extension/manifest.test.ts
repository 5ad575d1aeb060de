// package.json's contributions against the code: every command in the table is
// contributed with the QLoRA category and vice versa, menus name only known commands,
// views match, and the .vsix ignore file lets in only built files.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { COMMANDS, VIEWS } from '../../extension/commandIds';
import { START_TRAINING_COMMAND } from '../../language-server/service/codeLens';

const root = join(__dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const contributed: { command: string; title: string; category: string }[] = pkg.contributes.commands;

describe('extension manifest', () => {
  test('the command table and contributes.commands list the same ids, all in category QLoRA', () => {
    assert.deepEqual(contributed.map((c) => c.command).sort(), Object.values(COMMANDS).sort());
    for (const c of contributed) {
      assert.equal(c.category, 'QLoRA', c.command);
      assert.match(c.command, /^qlora\./);
      assert.ok(c.title.length > 0);
    }
  });

  test('the code lens command is one the extension registers', () => {
    assert.equal(START_TRAINING_COMMAND, COMMANDS.startTraining);
  });

  test('menus name only contributed commands', () => {
    const ids = new Set(contributed.map((c) => c.command));
    for (const [menu, items] of Object.entries(pkg.contributes.menus as Record<string, { command: string }[]>)) {
      for (const item of items) assert.ok(ids.has(item.command), `${menu}: ${item.command}`);
    }
    const explorer = pkg.contributes.menus['explorer/context'].map((i: { command: string }) => i.command);
    assert.ok(explorer.includes(COMMANDS.mergeAdapter));
    const title = pkg.contributes.menus['editor/title'].map((i: { command: string }) => i.command);
    assert.ok(title.includes(COMMANDS.startTraining));
  });

  test('views: a QLoRA container with the Runs tree and the Metrics webview', () => {
    assert.equal(pkg.contributes.viewsContainers.activitybar[0].id, VIEWS.container);
    const views = pkg.contributes.views[VIEWS.container];
    assert.deepEqual(views.map((v: { id: string }) => v.id), [VIEWS.runs, VIEWS.metrics]);
    assert.equal(views[1].type, 'webview');
  });

  test('settings the language server reads are contributed under qlora', () => {
    const props = Object.keys(pkg.contributes.configuration.properties);
    for (const key of ['qlora.checkFiles', 'qlora.dataLinesToCheck', 'qlora.server.nodePath']) assert.ok(props.includes(key), key);
  });

  test('@types/vscode is not newer than engines.vscode (vsce refuses that)', () => {
    const engine = pkg.engines.vscode.replace(/^\^/, '').split('.').map(Number);
    const types = JSON.parse(readFileSync(join(root, 'node_modules/@types/vscode/package.json'), 'utf8')).version.split('.').map(Number);
    assert.ok(types[0] < engine[0] || (types[0] === engine[0] && types[1] <= engine[1]), `${types} vs ${engine}`);
  });

  test('.vscodeignore leaves out everything but built files, the grammar and the icon', () => {
    const lines = readFileSync(join(root, '.vscodeignore'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    assert.equal(lines[0], '**');
    for (const l of lines.slice(1)) {
      assert.ok(l.startsWith('!'), l);
      assert.match(l, /^!(package\.json|README\.md|dist\/|syntaxes\/|extension\/media\/)/);
    }
  });
});

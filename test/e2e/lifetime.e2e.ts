// Training that outlives the editor, and runs a person can manage, in a real workbench
// (code-server + Chromium): a run keeps training through a window reload and through a
// closed and reopened page (same run, same server, its step rising, never interrupted);
// the CLI demo's run appears in the Runs view; Start Training over its output folder
// offers runs/demo-2, which trains and finishes with a notification; runs are renamed and
// deleted; a scaffolded config with max_steps uncommented trains as it is.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import type { RunRecord } from '../../server/protocol';
import { configText, RIGHT_VALUE, writeWorkspace } from './fixture';
import { cache, missingTools, openWorkbench, pickFromContextMenu, root, runCommand, trainingServers, waitFor, workbenchState, type Workbench } from './workbench';

const shots = join(cache, 'screenshots-lifetime');
const skip = missingTools() ?? (existsSync(join(root, 'dist', 'cli.js')) ? undefined : 'dist/cli.js is not built (npm run build)');

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'));
// onnxruntime-node is an optional dependency; where npm installed it with binaries for this
// platform, the packaged extension must carry them.
const nativeShipped = existsSync(join(root, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', process.platform, process.arch));
const records = (outputDir: string): RunRecord[] =>
  readFileSync(join(outputDir, 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as RunRecord);
const lastStep = (outputDir: string) => records(outputDir).filter((r) => r.type === 'step').at(-1)?.step ?? 0;

async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}.png`) }).catch(() => {});
}

describe('training outlives the editor; runs a person can manage', { skip }, () => {
  let wb: Workbench;
  let page: Page;
  const workspace = mkdtempSync(join(tmpdir(), 'qlora-ws-life-'));
  const e2eOut = join(workspace, 'runs', 'e2e');
  const demoDir = join(workspace, 'demo');

  /** A new page on the same code-server: what reopening a closed browser tab is. */
  const openPage = async (): Promise<Page> => {
    const context = await wb.browser.newContext({ viewport: { width: 1440, height: 1100 } });
    const p = await context.newPage();
    await p.goto(`http://127.0.0.1:${wb.port}/?folder=${encodeURIComponent(workspace)}`, { timeout: 180_000 });
    await p.waitForSelector('.monaco-workbench', { timeout: 120_000 });
    return p;
  };
  /** The Runs view's row whose label is exactly `name`. */
  const runRow = (name: string) =>
    page.locator('.pane-body .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${name}$`) }) });
  /** Opens a file from the explorer, folder by folder, as a person would. */
  const openFile = async (relative: string) => {
    await page.keyboard.press('Control+Shift+E');
    const row = (name: string) => page.locator('.explorer-folders-view').getByRole('treeitem', { name, exact: true });
    const parts = relative.split('/');
    for (const folder of parts.slice(0, -1)) {
      await row(folder).click();
      if ((await row(folder).getAttribute('aria-expanded')) !== 'true') await page.keyboard.press('ArrowRight');
      await waitFor(`${folder} expanded`, async () => ((await row(folder).getAttribute('aria-expanded')) === 'true' ? true : undefined), 10_000);
    }
    await row(parts.at(-1)!).click();
    await page.locator('#status\\.editor\\.mode', { hasText: 'QLoRA' }).waitFor({ timeout: 60_000 });
  };
  /** The extension is active in this window: its status bar item is there (a busy machine takes minutes after a reload). */
  const extensionActive = () => page.locator('.statusbar-item', { hasText: /QLoRA/ }).first().waitFor({ timeout: 300_000 });
  before(async () => {
    rmSync(shots, { recursive: true, force: true });
    writeWorkspace(workspace);
    // Long enough to be training still after a reload and a reopened page on a quiet machine
    // (400 steps ran out there: ~8 steps/s); the first test stops it.
    writeFileSync(join(workspace, 'train.qlora'), configText(RIGHT_VALUE, 5000));
    // The CLI's run, made before the editor opens: `qlora demo` trains and records it in demo/runs/demo.
    const demo = spawnSync(process.execPath, [join(root, 'dist', 'cli.js'), 'demo', '--dir', demoDir, '--steps', '8'], { encoding: 'utf8', timeout: 300_000 });
    assert.equal(demo.status, 0, demo.stderr);
    assert.equal(readJson(join(demoDir, 'runs', 'demo', 'run.json')).state, 'done');
    wb = await openWorkbench(workspace);
    page = wb.page;
  });

  after(async () => {
    if (page) await shot(page, 'last');
    if (wb) {
      await wb.close();
      if (process.env.QLORA_E2E_LOG) console.log(wb.log.join(''));
      if (!process.env.QLORA_E2E_KEEP) rmSync(wb.dir, { recursive: true, force: true });
    }
    if (!process.env.QLORA_E2E_KEEP) rmSync(workspace, { recursive: true, force: true });
  });

  test('a run keeps training through a window reload and a closed and reopened page', async () => {
    await openFile('train.qlora');
    await extensionActive();
    await runCommand(page, 'QLoRA: Start Training');
    await waitFor('3 steps in runs/e2e', async () => (existsSync(join(e2eOut, 'metrics.jsonl')) && lastStep(e2eOut) >= 3 ? true : undefined), 180_000);
    const runId = readJson(join(e2eOut, 'run.json')).id as string;
    const [serverPid] = trainingServers(wb.dir);
    assert.ok(serverPid, 'the server recorded itself');
    // The installed .vsix carries this platform's onnxruntime-node (extension/packaging/vsix.mjs),
    // found from the extension's own folder (outside this checkout): the run says it uses it.
    const device = (records(e2eOut).find((r) => r.type === 'start') as { device?: string } | undefined)?.device ?? '';
    if (nativeShipped) assert.match(device, /\+ native GEMM \(ORT MLAS/, `the run's device: ${device}`);
    else console.log(`# not checked that the .vsix trains with native GEMM: ${process.platform}-${process.arch} has no onnxruntime-node binaries installed here`);

    // 1. Reload the window.
    const atReload = lastStep(e2eOut);
    await page.evaluate(() => ((window as unknown as { oldPage: boolean }).oldPage = true));
    await runCommand(page, 'Developer: Reload Window');
    await waitFor('the reloaded page', async () => ((await page.evaluate(() => !(window as unknown as { oldPage?: boolean }).oldPage)) ? true : undefined), 180_000);
    await page.waitForSelector('.monaco-workbench', { timeout: 180_000 });
    await page.locator('.statusbar-item', { hasText: /QLoRA: step \d+\/\d+/ }).first().waitFor({ timeout: 300_000 });
    await waitFor('steps rising after the reload', async () => (lastStep(e2eOut) >= atReload + 3 ? true : undefined), 120_000);
    await shot(page, '1-after-reload');

    // 2. Close the page for longer than code-server's reconnection grace (5 s): the extension host goes.
    const atClose = lastStep(e2eOut);
    await page.context().close();
    await new Promise((r) => setTimeout(r, 12_000));
    assert.ok(lastStep(e2eOut) > atClose, `the run trained on with no page open (step ${atClose} -> ${lastStep(e2eOut)})`);
    page = await openPage();
    await page.locator('.statusbar-item', { hasText: /QLoRA: step \d+\/\d+/ }).first().waitFor({ timeout: 300_000 });
    const atReopen = lastStep(e2eOut);
    await waitFor('steps rising after reopening', async () => (lastStep(e2eOut) >= atReopen + 2 ? true : undefined), 120_000);
    await shot(page, '2-after-reopen');

    // The same run on the same server, never interrupted.
    const run = readJson(join(e2eOut, 'run.json'));
    assert.equal(run.id, runId);
    assert.equal(run.state, 'training');
    assert.deepEqual(trainingServers(wb.dir), [serverPid]);
    const states = records(e2eOut).filter((r) => r.type === 'state').map((r) => (r as { state: string }).state);
    assert.ok(!states.includes('interrupted'), `states: ${states.join(', ')}`);
    assert.equal(states.filter((s) => s === 'training').length, 1, 'trained in one go, never restarted');

    await runCommand(page, 'QLoRA: Stop Training');
    await waitFor('the stopped run', async () => (readJson(join(e2eOut, 'run.json')).state === 'stopped' ? true : undefined), 120_000);
  });

  test('the CLI demo\'s run appears in the Runs view', async () => {
    await page.keyboard.press('Escape'); // whatever an earlier test left open
    await extensionActive();
    await runCommand(page, 'QLoRA: Refresh Runs');
    await runCommand(page, 'Focus on Runs View');
    await runRow('demo').first().waitFor({ timeout: 300_000 });
    assert.match(await runRow('demo').first().innerText(), /done/);
    await shot(page, '3-cli-run-listed');
  });

  test('Start Training over the demo\'s folder offers runs/demo-2; that run trains and finishes with a notification', async () => {
    await page.keyboard.press('Escape'); // whatever an earlier test left open
    await extensionActive();
    await openFile('demo/demo.qlora');
    await runCommand(page, 'QLoRA: Start Training');
    // Wait for the choice itself: for a moment the palette's own row ("QLoRA: Start Training") is still the first.
    await page.locator('.quick-input-widget .monaco-list-row', { hasText: 'Train in a new folder' }).first().waitFor({ timeout: 30_000 });
    const first = page.locator('.quick-input-widget .monaco-list-row').first();
    assert.match(await first.innerText(), /Train in a new folder: \.\/runs\/demo-2/, 'the new folder is the default choice');
    await shot(page, '4-demo-2-offered');
    await page.keyboard.press('Enter');
    const notification = page.locator('.notification-toast', { hasText: /run demo-2 finished/ }).first();
    await notification.waitFor({ timeout: 240_000 });
    assert.match(await notification.innerText(), /Try Model/);
    assert.equal(readJson(join(demoDir, 'runs', 'demo-2', 'run.json')).state, 'done');
    assert.match(readFileSync(join(demoDir, 'demo.qlora'), 'utf8'), /dir: \.\/runs\/demo-2\n/);
    // The earlier run is untouched.
    assert.equal(readJson(join(demoDir, 'runs', 'demo', 'run.json')).state, 'done');
    assert.ok(existsSync(join(demoDir, 'runs', 'demo', 'adapter', 'adapter_model.safetensors')));
    await shot(page, '5-finished');
  });

  test('rename and delete a run from the Runs view', async () => {
    await page.keyboard.press('Escape'); // whatever an earlier test left open
    await extensionActive();
    await runCommand(page, 'Focus on Runs View');
    const input = page.locator('.quick-input-widget input');
    const runName = () => readJson(join(demoDir, 'runs', 'demo', 'run.json')).name as string | undefined;
    const demoId = readJson(join(demoDir, 'runs', 'demo', 'run.json')).id as string;
    // The rename is driven by what is on screen until the run's record has the name: the
    // box (known by its prompt, which names the run) is filled while it holds anything else,
    // Enter is pressed in it once it holds the name, and the Runs view's menu opens it again
    // when it is gone without the name landing. Fill-then-Enter in a fixed order flaked:
    // CI16, the box went inert, then hidden, as the workbench settled after the previous run;
    // CI18 and CI22, the name was typed and Enter pressed, and the run kept its name (likely,
    // not seen: a second box, from the context menu's item run twice, replacing the first).
    const box = page.locator('.quick-input-widget', { hasText: `Run ${demoId}` });
    let opened = 0;
    let lastAction = 0;
    try {
      await waitFor('the new name in run.json', async () => {
        if (runName() === 'first demo') return true;
        if (Date.now() - lastAction < 1_500) return undefined; // let the last step land
        lastAction = Date.now();
        if (!(await box.isVisible())) {
          if (opened++ >= 4) throw new Error('the rename box was opened four times and the name did not land');
          await page.keyboard.press('Escape');
          await pickFromContextMenu(page, runRow('demo').first(), 'Rename Run');
          return undefined;
        }
        if ((await input.inputValue()) !== 'first demo') await input.fill('first demo', { timeout: 3_000 });
        else await input.press('Enter', { timeout: 3_000 });
        return undefined;
      }, 90_000);
    } catch (e) {
      await shot(page, 'fail-rename');
      console.log(await workbenchState(wb, page));
      throw e;
    }
    await runRow('first demo').first().waitFor({ timeout: 30_000 });
    assert.equal(runName(), 'first demo');

    await pickFromContextMenu(page, runRow('first demo').first(), 'Delete Run');
    const button = page.locator('.monaco-dialog-box .monaco-button', { hasText: 'Delete' }).first();
    await button.waitFor({ timeout: 10_000 });
    await shot(page, '6-delete-confirm');
    await button.click();
    await waitFor('the row to go', async () => ((await runRow('first demo').count()) === 0 ? true : undefined), 30_000);
    assert.ok(!existsSync(join(demoDir, 'runs', 'demo', 'run.json')));
    assert.ok(!existsSync(join(demoDir, 'runs', 'demo', 'checkpoints')));
    assert.ok(existsSync(join(demoDir, 'runs', 'demo-2', 'run.json')), 'the other run stays');
  });

  test('a scaffolded config with max_steps uncommented trains without another edit', async () => {
    await page.keyboard.press('Escape'); // whatever an earlier test left open
    await extensionActive();
    await runCommand(page, 'QLoRA: New Fine-Tune Config');
    // code-server's file dialogs are quick inputs that take a typed path.
    const input = page.locator('.quick-input-widget input');
    // Each dialog is known by its title; its box is filled with a folder first, and a path
    // typed before that would be replaced: type, then check the box kept it.
    const dialogs: [string, string][] = [
      ['the base model folder', join(workspace, 'model')],
      ['the training data', join(workspace, 'data', 'train.jsonl')],
      ['save the config as', join(workspace, 'scaffolded.qlora')],
    ];
    for (const [title, path] of dialogs) {
      await page.locator('.quick-input-widget', { hasText: title }).waitFor({ timeout: 30_000 });
      await waitFor(`the path in "${title}"`, async () => {
        await input.fill(path);
        await page.waitForTimeout(300);
        return (await input.inputValue()) === path ? true : undefined;
      }, 15_000);
      await page.keyboard.press('Enter');
      // Enter on a folder's path opens that folder in the dialog instead of choosing it: then
      // the dialog's own button (its openLabel, "Use This Model") chooses what the box names.
      const dialog = page.locator('.quick-input-widget', { hasText: title });
      await waitFor(`"${title}" to close`, async () => {
        if (!(await dialog.isVisible())) return true;
        await page.waitForTimeout(500);
        if (await dialog.isVisible()) await dialog.locator('.monaco-button').first().click().catch(() => {});
        return undefined;
      }, 15_000);
    }
    const file = join(workspace, 'scaffolded.qlora');
    await waitFor('the scaffolded file', async () => (existsSync(file) ? true : undefined), 30_000);
    await page.locator('#status\\.editor\\.mode', { hasText: 'QLoRA' }).waitFor({ timeout: 60_000 });
    const text = readFileSync(file, 'utf8');
    assert.match(text, /max_seq_len: 128\n/, 'capped at the tiny model\'s 128-token context');
    // Uncomment max_steps in the editor, as a person would: go to its line, delete "# ".
    const line = text.split('\n').findIndex((l) => /^  # max_steps: \d+$/.test(l)) + 1;
    assert.ok(line > 0, 'a commented max_steps with a value');
    await page.locator('.monaco-editor .view-lines').first().click();
    await page.keyboard.press('Control+G');
    await input.waitFor({ state: 'visible' });
    await page.keyboard.type(String(line));
    await page.keyboard.press('Enter');
    await page.keyboard.press('Home'); // to the first non-blank character: the "#"
    await page.keyboard.press('Delete');
    await page.keyboard.press('Delete');
    await page.keyboard.press('Control+S');
    await waitFor('the saved file', async () => (/^  max_steps: \d+$/m.test(readFileSync(file, 'utf8')) ? true : undefined), 10_000);
    await page.waitForTimeout(2000);
    assert.equal(await page.locator('.squiggly-error').count(), 0, 'no error in the file');
    await runCommand(page, 'QLoRA: Start Training');
    const out = join(workspace, 'runs', 'scaffolded');
    await waitFor('its first steps', async () => (existsSync(join(out, 'metrics.jsonl')) && lastStep(out) >= 1 ? true : undefined), 240_000);
    assert.equal(readJson(join(out, 'run.json')).state, 'training');
    await shot(page, '7-scaffolded-training');
    await runCommand(page, 'QLoRA: Stop Training');
    await waitFor('stopped', async () => (readJson(join(out, 'run.json')).state === 'stopped' ? true : undefined), 240_000);
  });
});

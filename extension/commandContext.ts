// What every command handler gets of the extension: one object, built in extension.ts.
// In a file of its own so that handlers in other files (exportCommand.ts, ...) import it
// without importing the command table that imports them.
import type * as vscode from 'vscode';
import type { MetricsViewProvider } from './metricsView';
import type { MetricsPanel } from './metricsPanel';
import type { MetricsPages } from './metricsPage';
import type { NodeRuntime } from './nodeRuntime';
import type { RunsController } from './runs';
import type { ServerManager } from './serverManager';

export interface CommandContext {
  runs: RunsController;
  server: ServerManager;
  metrics: MetricsViewProvider;
  metricsPanel: MetricsPanel;
  metricsPages: MetricsPages;
  output: vscode.OutputChannel;
  cliPath: string;
  runtime: () => NodeRuntime;
}

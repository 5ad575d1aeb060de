// Every command the extension contributes, by one name. package.json's `contributes.commands`
// lists the same ids (a unit test compares them) and extension/commands.ts must give each
// one a handler (the type checker enforces it).
export const COMMANDS = {
  newConfig: 'qlora.newConfig',
  startTraining: 'qlora.startTraining',
  stopTraining: 'qlora.stopTraining',
  resumeTraining: 'qlora.resumeTraining',
  showMetrics: 'qlora.showMetrics',
  mergeAdapter: 'qlora.mergeAdapter',
  exportGguf: 'qlora.exportGguf',
  tryModel: 'qlora.tryModel',
  refreshRuns: 'qlora.refreshRuns',
  showServerLog: 'qlora.showServerLog',
  restartServer: 'qlora.restartServer',
  exportAxolotl: 'qlora.exportAxolotl',
  stopServer: 'qlora.stopServer',
  renameRun: 'qlora.renameRun',
  deleteRun: 'qlora.deleteRun',
  revealRun: 'qlora.revealRun',
  openMetrics: 'qlora.openMetrics',
  compareRuns: 'qlora.compareRuns',
} as const;

export type CommandName = keyof typeof COMMANDS;

/** View ids, as package.json's `contributes.views` declares them. */
export const VIEWS = {
  container: 'qlora',
  runs: 'qlora.runs',
  metrics: 'qlora.metrics',
} as const;

/** Context key: folders that hold an adapter_config.json, for the explorer's Merge entry. */
export const ADAPTER_FOLDERS_KEY = 'qlora.adapterFolders';

// What a client may configure, under the `qlora` section of its settings.

export interface QloraSettings {
  /** Look at the disk: files exist, the model loads, data lines match the format. */
  checkFiles: boolean;
  /** Non-blank lines at the top of each data file checked against data.format. */
  dataLinesToCheck: number;
}

export const DEFAULT_SETTINGS: QloraSettings = { checkFiles: true, dataLinesToCheck: 5 };

/** Settings from a client's JSON, each field checked and defaulted on its own. */
export function readSettings(json: unknown): QloraSettings {
  const s = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>;
  return {
    checkFiles: typeof s.checkFiles === 'boolean' ? s.checkFiles : DEFAULT_SETTINGS.checkFiles,
    dataLinesToCheck:
      typeof s.dataLinesToCheck === 'number' && Number.isInteger(s.dataLinesToCheck) && s.dataLinesToCheck > 0
        ? s.dataLinesToCheck
        : DEFAULT_SETTINGS.dataLinesToCheck,
  };
}

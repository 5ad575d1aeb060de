// Which Node runs the training server. A user's `@tensorflow/tfjs-node-gpu` build is tied
// to the Node that compiled it, so the runtime is a setting: an explicit path, else `node`
// on PATH, else the editor's own runtime (Electron under desktop VS Code, which behaves as
// plain Node with ELECTRON_RUN_AS_NODE=1).
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface NodeRuntime {
  command: string;
  /** Extra environment the command needs. */
  env: Record<string, string>;
  /** Where it came from, for the log. */
  source: 'setting' | 'PATH' | 'editor';
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The first `node` on a PATH-style list, if any. */
export function findOnPath(name: string, pathEnv: string | undefined, platform = process.platform): string | undefined {
  const names = platform === 'win32' ? [`${name}.exe`, `${name}.cmd`] : [name];
  for (const dir of (pathEnv ?? '').split(delimiter)) {
    if (!dir) continue;
    for (const n of names) if (isExecutableFile(join(dir, n))) return join(dir, n);
  }
  return undefined;
}

export function resolveNodeRuntime(
  setting: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  execPath: string = process.execPath,
): NodeRuntime {
  const configured = setting?.trim();
  if (configured) {
    if (!isExecutableFile(configured)) throw new Error(`qlora.server.nodePath: ${configured} is not an executable file`);
    return { command: configured, env: {}, source: 'setting' };
  }
  const onPath = findOnPath('node', env.PATH);
  if (onPath) return { command: onPath, env: {}, source: 'PATH' };
  return { command: execPath, env: { ELECTRON_RUN_AS_NODE: '1' }, source: 'editor' };
}

// Where the shared pretrained model lives (../shared beside the project), if it does.
// Tests that need it skip with a printed reason when it is absent: a skip is not a pass.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const projectRoot = resolve(__dirname, '..', '..');
export const stories260KDir = resolve(projectRoot, '..', 'shared', 'models', 'stories260K');

/** The stories260K folder, or a skip reason for node:test's `skip` option. */
export function stories260K(): { dir: string; skip: false } | { dir: ''; skip: string } {
  if (existsSync(join(stories260KDir, 'stories260K.bin'))) return { dir: stories260KDir, skip: false };
  const reason = `needs ../shared/models/stories260K (not found at ${stories260KDir})`;
  console.log(`# SKIP: ${reason}`);
  return { dir: '', skip: reason };
}

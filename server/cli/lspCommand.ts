import { parse, UsageError } from './common';

export const lspUsage = 'qlora lsp --stdio';

export async function lspCommand(args: string[]): Promise<void> {
  const { values: v } = parse(args, { stdio: { type: 'boolean' } });
  if (!v.stdio) throw new UsageError('only --stdio is supported');
  const { startLanguageServer } = await import('../../language-server/server');
  startLanguageServer();
  // The connection keeps the process alive until the client sends exit.
  await new Promise<never>(() => {});
}

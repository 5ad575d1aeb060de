// The `qlora` command: headless access to the same engine the extension uses.
// Contract: ../shared/docs/DESIGN.md, "The qlora command".
import { UsageError } from './cli/common';
import { evalCommand, evalUsage } from './cli/evalCommand';
import { generateCommand, generateUsage } from './cli/generateCommand';
import { inspectCommand, inspectUsage } from './cli/inspectCommand';
import { convertCommand, convertUsage } from './cli/convertCommand';
import { trainCommand, trainUsage } from './cli/trainCommand';
import { demoCommand, demoUsage } from './cli/demoCommand';
import { lspCommand, lspUsage } from './cli/lspCommand';
import { serveCommand, serveUsage } from './cli/serveCommand';
import { mergeCommand, mergeUsage } from './cli/mergeCommand';
import { exportCommand, exportUsage } from './cli/exportCommand';

interface Command {
  usage: string;
  summary: string;
  run(args: string[]): Promise<void>;
}

const commands: Record<string, Command> = {
  demo: { usage: demoUsage, summary: 'make a tiny model and data set, fine-tune it, show text before and after', run: demoCommand },
  train: { usage: trainUsage, summary: 'fine-tune a LoRA adapter on a quantized base, as a .qlora file says', run: trainCommand },
  eval: { usage: evalUsage, summary: 'mean loss and perplexity of a model (and adapter) on a text file', run: evalCommand },
  generate: { usage: generateUsage, summary: 'generate text from a model (and adapter)', run: generateCommand },
  inspect: { usage: inspectUsage, summary: 'architecture, parameters, linear modules, memory per quantization', run: inspectCommand },
  lsp: { usage: lspUsage, summary: 'the .qlora language server on standard input/output', run: lspCommand },
  convert: { usage: convertUsage, summary: 'write a model in the Hugging Face layout', run: convertCommand },
  serve: { usage: serveUsage, summary: 'the local training server the extension talks to (HTTP on 127.0.0.1)', run: serveCommand },
  merge: { usage: mergeUsage, summary: 'merge a LoRA adapter into its base: a standalone Hugging Face model', run: mergeCommand },
  export: { usage: exportUsage, summary: 'GGUF for llama.cpp / LM Studio, or an Ollama folder, with a quantization report', run: exportCommand },
};

function help(): string {
  return ['usage: qlora <command> [options]', '', ...Object.entries(commands).map(([n, c]) => `  ${n.padEnd(9)} ${c.summary}\n            ${c.usage}`)].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help() + '\n');
    return name ? 0 : 2;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`qlora: unknown command '${name}'\n${help()}\n`);
    return 2;
  }
  try {
    await cmd.run(args);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`qlora ${name}: ${e.message}\nusage: ${cmd.usage}\n`);
      return 2;
    }
    process.stderr.write(`qlora ${name}: ${(e as Error).message}\n`);
    if (process.env.QLORA_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; });

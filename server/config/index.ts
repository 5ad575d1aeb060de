// The `.qlora` config module: one schema, parsed with positions, checked against the
// disk. The language server, the training server and the `qlora` command import this.
import { checkFiles, type FileCheckOptions } from './checkFiles';
import { sortDiagnostics } from './diagnostics';
import { parse, type ParseResult } from './parse';

export { checkFiles, type FileCheckOptions } from './checkFiles';
export {
  estimateCost,
  bytesPerBaseParameter,
  formatBytes,
  formatCount,
  type CostEstimate,
  type MemoryEstimate,
  type QuantizationChoice,
} from './cost';
export { describeType, expectation, formatDefault, formatValue } from './describe';
export {
  formatDiagnostic,
  hasErrors,
  sortDiagnostics,
  type ConfigDiagnostic,
  type DiagnosticCode,
  type Fix,
  type Position,
  type Range,
  type Severity,
  type TextEdit,
} from './diagnostics';
export { LineIndex } from './lineIndex';
export { modelFacts, type ModelFacts } from './modelFacts';
export { parse, type ParseResult } from './parse';
export { resolveAgainst } from './resolve';
export {
  ALL_KEYS,
  ALL_LINEAR,
  MODULE_DOCS,
  SCHEMA,
  SECTION_NAMES,
  findKey,
  isSection,
  sectionKeys,
  type BackendName,
  type DataFormatName,
  type KeyInfo,
  type KeySpec,
  type PathKey,
  type LrScheduler,
  type Quantization,
  type ResolvedConfig,
  type SectionName,
} from './schema';
export { occurrenceAt, type ConfigSource, type KeyOccurrence, type ModuleEntry } from './source';

/**
 * Everything that can be known before a run: parse() and then checkFiles(), problems
 * in reading order. What the training server and `qlora train` call before training.
 */
export function parseAndCheck(text: string, baseDir: string, options?: FileCheckOptions): ParseResult {
  const parsed = parse(text, baseDir);
  const diagnostics = sortDiagnostics([...parsed.diagnostics, ...checkFiles(parsed, options)]);
  return { ...parsed, diagnostics };
}

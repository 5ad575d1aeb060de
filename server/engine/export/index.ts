// Export to where models run: GGUF for llama.cpp, Ollama and LM Studio, with the
// post-training quantization report. The engine API the CLI and the extension call.
export { exportGguf } from './exportGguf';
export { exportOllama, type OllamaExportOptions, type OllamaExportResult } from './ollama';
export { EXPORT_TYPES, type ExportType } from './ggmlTypes';
export { findNodeLlamaCpp, runLlamaCpp } from './llamaCpp';
export { perplexityOf } from './perplexity';
export * from './types';

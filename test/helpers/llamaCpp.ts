// Whether llama.cpp (node-llama-cpp) is here for the GGUF tests; they skip with this reason when not.
import { findNodeLlamaCpp } from '../../server/engine/export/llamaCpp';

export function llamaCppSkip(): string | false {
  if (findNodeLlamaCpp()) return false;
  const reason = 'needs node-llama-cpp (npm i -D -E node-llama-cpp@3.21.1) to read the GGUF files in llama.cpp';
  console.log(`# SKIP: ${reason}`);
  return reason;
}

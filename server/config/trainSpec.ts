// The parsed `.qlora` file as the engine's TrainSpec: the one place where the config
// meets the trainer. Keys are shared, so the mapping is the identity, and the return type
// makes the compiler check that a ResolvedConfig is a TrainSpec (a key renamed or retyped
// on either side fails here).
import type { TrainSpec } from '../engine/train/spec';
import type { ResolvedConfig } from './schema';

export function trainSpec(config: ResolvedConfig): TrainSpec {
  return config;
}

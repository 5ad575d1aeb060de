// Merging a LoRA adapter into its base model: the engine API the CLI, the training server
// and the extension call.
export { mergeAdapter, addLoraDelta } from './merge';
export { checkMerge, planMerge } from './plan';
export { roundTrip4bitInPlace } from '../quant/roundTrip';
export * from './types';

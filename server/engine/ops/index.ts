// Fused ops with their own gradients (host kernels on cpu and wasm, composite tfjs ops
// elsewhere). Importing this module registers the kernels.
export { rmsNorm, rmsNormComposite } from './rmsNorm';
export { applyRope, ropeComposite } from './rope';
export { swiglu, swigluComposite } from './swiglu';
export { maskedSoftmax, maskedSoftmaxComposite } from './maskedSoftmax';
export { attention, attentionComposite, attentionRunsNative } from './attention';
export { dropout, dropoutMask } from './dropout';
export { setFusedOps } from './hostKernel';

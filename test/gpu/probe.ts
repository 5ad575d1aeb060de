// Prints, as one JSON line, whether Dawn finds a WebGPU adapter in this environment:
// {"ok":true,"adapter":"..."} or {"ok":false,"why":"..."}. test/run.mjs asks it first
// as the environment is, then under test/gpu/with-mesa.sh, to choose where the webgpu
// tests run.
import { adapterName, startWebGpu } from '../../server/engine/kernels/webgpuDawn';

void startWebGpu().then((r) => {
  console.log(JSON.stringify(r.ok ? { ok: true, adapter: adapterName(r.adapter) } : { ok: false, why: r.why }));
  // Dawn's threads keep the process alive otherwise.
  process.exit(0);
});

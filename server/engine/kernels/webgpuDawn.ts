// WebGPU in Node for @tensorflow/tfjs-backend-webgpu: Dawn (Chromium's WebGPU, the
// prebuilt addon of the `webgpu` npm package) provides `navigator.gpu` and the GPU*
// constants a browser would. The tfjs backend registers itself on import only where
// navigator.gpu already exists, and asks for an adapter with a power preference alone, so
// everything here happens before that import.
//
// Knobs, read from the environment (Dawn can reach some GPUs only through them):
//   QLORA_DAWN_NODE               dawn.node to load (default: the webgpu package's build for this platform)
//   QLORA_DAWN_OPTIONS            Dawn's create() options, space-separated, e.g. `backend=opengl`
//   QLORA_WEBGPU_COMPAT=1         ask for a compatibility-mode adapter (OpenGL ES class GPUs)
//   QLORA_WEBGPU_ALLOW_SOFTWARE=1 accept a CPU-rendered adapter (llvmpipe, lavapipe, SwiftShader): for tests
import { dirname, join } from 'node:path';

/** What Dawn reports of the adapter (GPUAdapterInfo), plus how it was asked for. */
export interface WebGpuAdapter {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  software: boolean;
  compatibilityMode: boolean;
}

export type WebGpuStart =
  | { ok: true; adapter: WebGpuAdapter }
  | { ok: false; why: string; howToGet: string };

interface AdapterLike {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  limits: Record<string, number>;
  requestDevice(descriptor?: { requiredLimits?: Record<string, number> }): Promise<unknown>;
}
interface GpuLike {
  requestAdapter(options?: Record<string, unknown>): Promise<AdapterLike | null>;
}
interface DawnModule {
  create(options: string[]): GpuLike;
  globals: Record<string, unknown>;
}

const SOFTWARE_RENDERERS = /llvmpipe|lavapipe|softpipe|swiftshader/i;

// Limits that compatibility mode lowers below what tfjs's kernels and ours bind (it asks
// for a few limits of its own, not these).
const COMPAT_LIMITS = ['maxStorageBuffersPerShaderStage', 'maxUniformBuffersPerShaderStage', 'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ', 'maxStorageBufferBindingSize', 'maxBufferSize'];

let started: WebGpuStart | undefined;

/** Loads Dawn, finds an adapter and registers the tfjs `webgpu` backend (once per process). */
export async function startWebGpu(env: NodeJS.ProcessEnv = process.env): Promise<WebGpuStart> {
  if (started?.ok) return started;
  started = await start(env);
  return started;
}

async function start(env: NodeJS.ProcessEnv): Promise<WebGpuStart> {
  const dawn = loadDawn(env.QLORA_DAWN_NODE);
  if ('why' in dawn) return { ok: false, ...dawn };
  const options = (env.QLORA_DAWN_OPTIONS ?? '').split(/\s+/).filter(Boolean);
  let gpu: GpuLike;
  try {
    gpu = dawn.create(options);
  } catch (e) {
    return { ok: false, why: `Dawn did not start with options [${options.join(' ')}]: ${firstLine(e)}`, howToGet: 'Check QLORA_DAWN_OPTIONS.' };
  }
  const compatibilityMode = env.QLORA_WEBGPU_COMPAT === '1';
  // Merged into every adapter request, tfjs's included.
  const request: Record<string, unknown> = compatibilityMode ? { featureLevel: 'compatibility' } : {};
  let adapter = await gpu.requestAdapter({ powerPreference: 'high-performance', ...request });
  if (!adapter) {
    adapter = await gpu.requestAdapter({ ...request, forceFallbackAdapter: true });
    if (adapter) request.forceFallbackAdapter = true;
  }
  if (!adapter) {
    return {
      ok: false,
      why: 'Dawn found no GPU adapter, not even a software (fallback) one',
      howToGet: 'On Linux Dawn reaches the GPU through Vulkan: it needs the Vulkan loader (libvulkan.so.1, package ' +
        'libvulkan1) and a driver with a Vulkan ICD (NVIDIA, or Mesa RADV/ANV); Dawn\'s own warning above says which ' +
        'part it missed. For an OpenGL-only GPU try QLORA_DAWN_OPTIONS=backend=opengl QLORA_WEBGPU_COMPAT=1.',
    };
  }
  const info = adapter.info ?? {};
  const described: WebGpuAdapter = {
    vendor: info.vendor ?? '', architecture: info.architecture ?? '', device: info.device ?? '', description: info.description ?? '',
    software: !!info.isFallbackAdapter || SOFTWARE_RENDERERS.test(`${info.device} ${info.description} ${info.architecture}`),
    compatibilityMode,
  };
  if (described.software && env.QLORA_WEBGPU_ALLOW_SOFTWARE !== '1') {
    return {
      ok: false,
      why: `the only adapter is a software renderer on the CPU (${adapterName(described)}), slower than the wasm backend`,
      howToGet: 'Use backend: wasm, or set QLORA_WEBGPU_ALLOW_SOFTWARE=1 to run on it anyway (for tests).',
    };
  }
  for (const [name, value] of Object.entries(dawn.globals)) {
    if (!(name in globalThis)) Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
  }
  provideNavigatorGpu(Object.keys(request).length ? adjustedGpu(gpu, request) : gpu);
  try {
    // A literal specifier, so that the bundle carries the backend; inside try, so that a
    // bundle built without the optional package still loads.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('@tensorflow/tfjs-backend-webgpu');
  } catch (e) {
    return { ok: false, why: `@tensorflow/tfjs-backend-webgpu did not load: ${firstLine(e)}`, howToGet: 'Install it with `npm install @tensorflow/tfjs-backend-webgpu`.' };
  }
  return { ok: true, adapter: described };
}

function loadDawn(explicitPath: string | undefined): DawnModule | { why: string; howToGet: string } {
  let path = explicitPath;
  if (!path) {
    try {
      // The package's own entry is an ES module that finds dawn.node by import.meta.url,
      // which a CommonJS bundle lacks: the addon is loaded directly.
      const arch = process.platform === 'darwin' ? 'universal' : process.arch;
      path = join(dirname(require.resolve('webgpu/package.json')), 'dist', `${process.platform}-${arch}`, 'dawn.node');
    } catch {
      return { why: 'the webgpu package (Dawn for Node) is not installed', howToGet: 'Install it with `npm install webgpu`, or point QLORA_DAWN_NODE at a dawn.node.' };
    }
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(path) as DawnModule;
  } catch (e) {
    return { why: `Dawn's addon ${path} did not load: ${firstLine(e)}`, howToGet: `The webgpu package ships builds for linux-x64/arm64, darwin and win32; this is ${process.platform}-${process.arch}.` };
  }
}

/** navigator.gpu, whether or not this Node defines navigator (Node 21+ does, read-only). */
function provideNavigatorGpu(gpu: GpuLike): void {
  const g = globalThis as { navigator?: object };
  if (g.navigator) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true, writable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
}

/**
 * A navigator.gpu that adds `request` to every adapter request; a compatibility-mode
 * adapter's devices get the limits the adapter has, not compatibility mode's defaults.
 */
function adjustedGpu(gpu: GpuLike, request: Record<string, unknown>): GpuLike {
  return {
    async requestAdapter(options) {
      const adapter = await gpu.requestAdapter({ ...options, ...request });
      if (!adapter || request.featureLevel !== 'compatibility') return adapter;
      const limits: Record<string, number> = {};
      for (const name of COMPAT_LIMITS) if (adapter.limits[name] !== undefined) limits[name] = adapter.limits[name];
      return new Proxy(adapter, {
        get(target, key) {
          if (key === 'requestDevice') {
            return (d: { requiredLimits?: Record<string, number> } = {}) =>
              target.requestDevice({ ...d, requiredLimits: { ...limits, ...d.requiredLimits } });
          }
          const value: unknown = Reflect.get(target, key);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    },
  };
}

export function adapterName(a: WebGpuAdapter): string {
  const parts = [a.device, a.description].filter(Boolean);
  const name = parts.length === 2 && !a.description.includes(a.device) ? `${a.device} (${a.description})`
    : parts[parts.length - 1] ?? ([a.vendor, a.architecture].filter(Boolean).join(' ') || 'unnamed adapter');
  const notes = [a.compatibilityMode ? 'compatibility mode' : '', a.software ? 'software' : ''].filter(Boolean);
  return notes.length ? `${name}, ${notes.join(', ')}` : name;
}

function firstLine(e: unknown): string {
  return String(e instanceof Error ? e.message : e).split('\n')[0];
}

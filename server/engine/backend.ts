// Picks the TensorFlow.js backend at run time, in the order the design names:
// `tensorflow` (tfjs-node-gpu, then tfjs-node) where it loads, else `wasm` (SIMD), else
// `cpu`. `webgpu` (Dawn, kernels/webgpuDawn.ts) runs only when asked for. A forced
// backend that cannot load is an error that says how to get it.
import { tf } from './tf';
import { registerWasmBatchMatMul } from './kernels/wasmBatchMatMul';
import { registerWasmIdentity } from './kernels/wasmIdentity';
import { registerNativeBatchMatMul } from './kernels/nativeBatchMatMul';
import { nativeDisabledByEnv, startOrtProvider } from './kernels/native/ortProvider';
import { adapterName, startWebGpu } from './kernels/webgpuDawn';
import { registerWebgpuDequantize4bit } from './kernels/webgpuDequantize4bit';

export const BACKENDS = ['auto', 'tensorflow', 'wasm', 'cpu', 'webgpu'] as const;
export type BackendChoice = (typeof BACKENDS)[number];

export interface BackendInfo {
  /** The tfjs backend name in use: tensorflow | wasm | cpu | webgpu. */
  backend: string;
  /** What it runs on, in words: "CUDA GPU (tfjs-node-gpu)", "wasm, SIMD, 1 thread", ... */
  device: string;
}

export class BackendUnavailableError extends Error {
  constructor(backend: string, why: string, howToGet: string) {
    super(`backend '${backend}' is not available: ${why}. ${howToGet}`);
    this.name = 'BackendUnavailableError';
  }
}

let current: BackendInfo | undefined;

/** Sets the backend for this process (once; later calls with the same choice are free). */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendInfo> {
  if (current && (choice === 'auto' || choice === current.backend)) return current;
  const order: BackendChoice[] = choice === 'auto' ? ['tensorflow', 'wasm', 'cpu'] : [choice];
  const failures: string[] = [];
  for (const name of order) {
    try {
      current = await tryBackend(name);
      return current;
    } catch (e) {
      if (choice !== 'auto') throw e;
      failures.push(`${name}: ${(e as Error).message}`);
    }
  }
  throw new Error(`no TensorFlow.js backend could start:\n  ${failures.join('\n  ')}`);
}

export function currentBackend(): BackendInfo | undefined {
  return current;
}

async function tryBackend(name: BackendChoice): Promise<BackendInfo> {
  switch (name) {
    case 'tensorflow': return tensorflowBackend();
    case 'wasm': {
      registerWasmBatchMatMul();
      registerWasmIdentity();
      if (!(await tf.setBackend('wasm'))) {
        throw new BackendUnavailableError('wasm', 'it failed to initialise', 'Reinstall @tensorflow/tfjs-backend-wasm.');
      }
      await tf.ready();
      const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
      return { backend: 'wasm', device: `wasm${simd ? ', SIMD' : ''}, 1 thread${nativeCpuKernels()}` };
    }
    case 'cpu':
      await tf.setBackend('cpu');
      await tf.ready();
      // The cpu backend's first write prints an advert for tfjs-node; our choice is reported instead.
      (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
      return { backend: 'cpu', device: 'plain JavaScript (slow)' };
    case 'webgpu': return webgpuBackend();
    default:
      throw new Error(`unknown backend '${name}'`);
  }
}

let nativeNote: string | undefined;

/**
 * Puts the native CPU provider (kernels/native/ortProvider.ts) behind the wasm backend's
 * matrix products, once per process; returns what the backend report adds. Absent, off
 * or failing its self-test, the wasm kernels stay and the reason is printed once.
 */
function nativeCpuKernels(): string {
  if (nativeNote !== undefined) return nativeNote;
  if (nativeDisabledByEnv()) {
    nativeNote = ' (native GEMM off: QLORA_NATIVE=0)';
    return nativeNote;
  }
  const started = startOrtProvider();
  if (started.ok) {
    registerNativeBatchMatMul(started.provider);
    nativeNote = ` + native GEMM (${started.provider.label})`;
  } else {
    nativeNote = ' (native GEMM unavailable)';
    console.warn(`qlora: native CPU kernels are not used: ${started.why}; matrix products stay on wasm.`);
  }
  return nativeNote;
}

async function webgpuBackend(): Promise<BackendInfo> {
  const gpu = await startWebGpu();
  if (!gpu.ok) throw new BackendUnavailableError('webgpu', gpu.why, gpu.howToGet);
  registerWebgpuDequantize4bit();
  // The backend's factory asks Dawn for the adapter and device itself; a failure there
  // is logged by tfjs and reported as false.
  if (!(await tf.setBackend('webgpu'))) {
    throw new BackendUnavailableError('webgpu', `the device of ${adapterName(gpu.adapter)} did not start (see the warning above)`,
      'Use backend: wasm.');
  }
  await tf.ready();
  return { backend: 'webgpu', device: `WebGPU (Dawn): ${adapterName(gpu.adapter)}` };
}

// Every op the engine runs is a kernel TensorFlow's C API implements, except
// Dequantize4bit, which has no `tensorflow` kernel and takes its host path
// (quant/kernels.ts): the packed weight is downloaded, dequantized and uploaded per use.
async function tensorflowBackend(): Promise<BackendInfo> {
  // tfjs-node registers the `tensorflow` backend in the global engine that every copy of
  // tfjs-core shares, so loading it from the bundle works.
  const tried: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      // Dynamic so that bundlers leave the optional native packages alone.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require(pkg);
      if (!(await tf.setBackend('tensorflow'))) throw new Error('setBackend returned false');
      await tf.ready();
      return { backend: 'tensorflow', device: pkg.endsWith('-gpu') ? 'CUDA GPU (tfjs-node-gpu)' : 'native CPU (tfjs-node)' };
    } catch (e) {
      tried.push(`${pkg}: ${firstLine((e as Error).message)}`);
    }
  }
  throw new BackendUnavailableError('tensorflow', tried.join('; '),
    'Install it with `npm install @tensorflow/tfjs-node-gpu` (CUDA) or `npm install @tensorflow/tfjs-node`, ' +
    'in the Node version that runs the training server.');
}

function firstLine(s: string): string {
  return s.split('\n')[0];
}

// The one place the engine imports TensorFlow.js from. tfjs-core's CommonJS entry
// registers no gradients, so they are registered here explicitly; backends register
// themselves on import (see backend.ts for the run-time choice).
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';

export { tf };
export type Tensor = tf.Tensor;

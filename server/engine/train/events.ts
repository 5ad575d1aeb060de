// What a training run reports, as it happens. The CLI prints these (one JSON object per
// line with --json), the training server appends them to metrics.jsonl and streams them,
// and the side panel draws them: one definition for every consumer.

export interface StartEvent {
  type: 'start';
  backend: string;
  device: string;
  totalSteps: number;
  startStep: number; // 0, or the checkpoint's step when resuming
  trainableParams: number;
  totalParams: number;
  trainExamples: number;
  validationExamples: number;
  truncatedExamples: number;
  droppedExamples: number;
}

export interface StepEvent {
  type: 'step';
  step: number;
  totalSteps: number;
  epoch: number;
  /** Mean of the micro-batch losses of this optimizer step. */
  loss: number;
  lr: number;
  /** Global L2 norm of the gradient before clipping. */
  gradNorm: number;
  tokensPerSec: number;
  /** Bytes and tensors held by the TensorFlow.js backend after the step. */
  memoryBytes: number;
  numTensors: number;
  /** Resident set size of the training process (bytes), added by the server's worker; absent from the CLI. */
  rssBytes?: number;
  elapsedMs: number;
  etaMs: number;
}

export interface EvalEvent { type: 'eval'; step: number; evalLoss: number; tokens: number }
export interface CheckpointEvent { type: 'checkpoint'; step: number; path: string }
export interface LogEvent { type: 'log'; level: 'info' | 'warning'; message: string }
export interface DoneEvent { type: 'done'; step: number; adapter: string; stopped: boolean }
export interface ErrorEvent { type: 'error'; step: number; message: string }

export type TrainEvent = StartEvent | StepEvent | EvalEvent | CheckpointEvent | LogEvent | DoneEvent | ErrorEvent;

// The `.qlora` schema: every key declared once, with its type, range or values, default,
// a one-line description and per-value docs. The parser, the language server
// (completion, hover, diagnostics, quick fixes), the README's key table, the TextMate
// grammar and the JSON Schema given to yaml-language-server are all derived from this
// object, so a key added here reaches all of them. The names of DESIGN.md's sketch are a
// contract; `aliases` are what other tools (Axolotl, PEFT, TRL) call the same setting,
// used only to say "did you mean".
import { LINEAR_MODULES, type LinearModule } from '../engine/model/config';

interface KeyBase {
  /** One line, shown in completion, hover and the README. */
  description: string;
  /** Other tools' names for this setting. */
  aliases?: readonly string[];
  /** No default makes sense: the file must set it. */
  required?: boolean;
}

/** A value above `value` is allowed but probably a mistake; `reason` says why. */
export interface Suspicion {
  value: number;
  reason: string;
}

export interface IntegerKey extends KeyBase {
  type: 'integer';
  default?: number;
  min?: number;
  max?: number;
  powerOfTwo?: boolean;
  warnAbove?: Suspicion;
}

export interface NumberKey extends KeyBase {
  type: 'number';
  default?: number;
  min?: number;
  minExclusive?: boolean;
  max?: number;
  maxExclusive?: boolean;
  warnAbove?: Suspicion;
}

export interface BooleanKey extends KeyBase {
  type: 'boolean';
  default?: boolean;
}

export interface EnumKey extends KeyBase {
  type: 'enum';
  /** Each allowed value and its doc. */
  values: Readonly<Record<string, string>>;
  default?: string;
}

/** A path relative to the `.qlora` file; `target` says what it must point at. */
export interface PathKey extends KeyBase {
  type: 'path';
  target: 'model' | 'data' | 'folder';
  default?: string;
}

/** `all-linear` or a list of the linear projections in PEFT's names. */
export interface ModulesKey extends KeyBase {
  type: 'modules';
  default?: typeof ALL_LINEAR | readonly LinearModule[];
}

export type KeySpec = IntegerKey | NumberKey | BooleanKey | EnumKey | PathKey | ModulesKey;

export interface SectionSpec {
  description: string;
  keys: Readonly<Record<string, KeySpec>>;
}

export const ALL_LINEAR = 'all-linear';

export const SCHEMA = {
  model: {
    description: 'The base model and how its frozen weights are quantized.',
    keys: {
      base: {
        type: 'path',
        target: 'model',
        required: true,
        description:
          'The model to fine-tune: a Hugging Face folder (config.json, *.safetensors, tokenizer.json) or a folder holding a llama2.c checkpoint and its tokenizer.',
        aliases: ['base_model', 'model_name_or_path', 'base_model_name_or_path', 'model_path', 'path'],
      },
      quantization: {
        type: 'enum',
        default: 'nf4',
        description: 'How the seven linear projections of every block are stored while training.',
        values: {
          nf4: '4-bit NormalFloat: 16 levels at the quantiles of a normal distribution, the QLoRA paper\'s choice for normally distributed weights.',
          fp4: '4-bit floating point (sign, 2 exponent bits, 1 mantissa bit), as bitsandbytes\' FP4.',
          none: 'Keep the base weights in float32: no quantization error, eight times the memory of NF4.',
        },
        aliases: ['quant_type', 'bnb_4bit_quant_type', 'load_in_4bit', 'quantize'],
      },
      double_quant: {
        type: 'boolean',
        default: true,
        description:
          'Quantize the per-block absmax scales too (8-bit codes in blocks of 256): about 0.37 bits per parameter less at block size 64.',
        aliases: ['bnb_4bit_use_double_quant', 'use_double_quant', 'double_quantization'],
      },
      block_size: {
        type: 'integer',
        default: 64,
        min: 32,
        max: 4096,
        powerOfTwo: true,
        description: 'Weights per quantization block, each with its own absmax scale: smaller blocks are more accurate and take more memory.',
        aliases: ['blocksize', 'quant_block_size', 'group_size'],
      },
    },
  },
  lora: {
    description: 'The low-rank adapters: the only weights that train.',
    keys: {
      r: {
        type: 'integer',
        default: 8,
        min: 1,
        description: 'The adapter rank: A is r x in, B is out x r, adding r x (in + out) parameters per module and layer.',
        aliases: ['lora_r', 'rank'],
      },
      alpha: {
        type: 'number',
        default: 16,
        min: 0,
        minExclusive: true,
        description: 'Scaling numerator: the adapter output is multiplied by alpha / r (alpha / sqrt(r) with rslora).',
        aliases: ['lora_alpha'],
      },
      dropout: {
        type: 'number',
        default: 0.05,
        min: 0,
        max: 1,
        maxExclusive: true,
        description: 'Dropout on the adapter input while training.',
        aliases: ['lora_dropout'],
      },
      target_modules: {
        type: 'modules',
        default: ALL_LINEAR,
        description: `The projections that get an adapter: a list of ${LINEAR_MODULES.join(', ')}, or ${ALL_LINEAR} for all seven (the QLoRA paper's choice).`,
        aliases: ['lora_target_modules', 'lora_target_linear', 'modules'],
      },
      rslora: {
        type: 'boolean',
        default: false,
        description: 'Rank-stabilized LoRA: scale by alpha / sqrt(r) instead of alpha / r, so that high ranks keep learning.',
        aliases: ['use_rslora', 'lora_use_rslora'],
      },
    },
  },
  data: {
    description: 'The training examples: JSONL files, one example per line.',
    keys: {
      train: {
        type: 'path',
        target: 'data',
        required: true,
        description: 'The training examples: a JSONL file in data.format.',
        aliases: ['dataset', 'datasets', 'train_file', 'data_files', 'path'],
      },
      format: {
        type: 'enum',
        default: 'text',
        description: 'The layout of each JSONL line.',
        values: {
          text: 'One {"text": ...} object per line; every token is trained.',
          alpaca: 'One {"instruction", "input", "output"} object per line ("input" and "system" optional); the prompt is left out of the loss unless train_on_prompt.',
          chat: 'One {"messages": [{"role", "content"}, ...]} object per line, rendered with the model\'s chat template; only assistant turns are trained unless train_on_prompt.',
        },
        aliases: ['type', 'dataset_format', 'data_format'],
      },
      validation: {
        type: 'path',
        target: 'data',
        description: 'Held-out examples in a second JSONL file of the same format; used instead of validation_split.',
        aliases: ['validation_file', 'eval_file', 'val_file', 'test_file', 'eval'],
      },
      validation_split: {
        type: 'number',
        default: 0.1,
        min: 0,
        max: 1,
        maxExclusive: true,
        description: 'Fraction of the training examples held out for evaluation when there is no validation file; 0 holds none out.',
        aliases: ['val_set_size', 'validation_split_percentage', 'test_size', 'eval_split'],
      },
      max_seq_len: {
        type: 'integer',
        default: 256,
        min: 2,
        description: 'Tokens per example; longer examples are truncated and the count is reported.',
        aliases: ['sequence_len', 'max_seq_length', 'max_length', 'cutoff_len', 'seq_len', 'context_length'],
      },
      train_on_prompt: {
        type: 'boolean',
        default: false,
        description: 'Also train on prompt tokens (instruction and input, system and user turns); by default only responses count in the loss.',
        aliases: ['train_on_inputs', 'train_on_input'],
      },
    },
  },
  training: {
    description: 'The optimizer, the schedule and how long to train.',
    keys: {
      epochs: {
        type: 'integer',
        default: 3,
        min: 1,
        description: 'Passes over the training examples; max_steps, when set, decides instead.',
        aliases: ['num_epochs', 'num_train_epochs', 'epoch'],
      },
      max_steps: {
        type: 'integer',
        min: 1,
        description: 'Stop after this many optimizer steps instead of counting epochs.',
        aliases: ['steps', 'num_steps', 'total_steps', 'max_iters'],
      },
      micro_batch_size: {
        type: 'integer',
        default: 4,
        min: 1,
        description: 'Examples in one forward and backward pass; activation memory grows with it.',
        aliases: ['batch_size', 'per_device_train_batch_size', 'train_batch_size'],
      },
      gradient_accumulation_steps: {
        type: 'integer',
        default: 4,
        min: 1,
        description: 'Micro-batches summed into each optimizer step: the effective batch is micro_batch_size x this.',
        aliases: ['grad_accum', 'gradient_accumulation', 'accumulation_steps'],
      },
      gradient_checkpointing: {
        type: 'boolean',
        default: true,
        description: 'Keep only each decoder block\'s input for the backward pass and recompute the block there: activation memory per layer falls to one hidden vector per token, for about one more forward pass of compute.',
        aliases: ['activation_checkpointing', 'grad_checkpointing'],
      },
      learning_rate: {
        type: 'number',
        default: 2e-4,
        min: 0,
        minExclusive: true,
        warnAbove: { value: 1e-2, reason: 'LoRA usually trains at 1e-5 to 1e-3, and the loss tends to diverge above 1e-2' },
        description: 'The peak AdamW learning rate, reached at the end of warmup.',
        aliases: ['lr'],
      },
      lr_scheduler: {
        type: 'enum',
        default: 'cosine',
        description: 'How the learning rate moves after warmup.',
        values: {
          constant: 'Stay at learning_rate.',
          linear: 'Fall in a straight line to 0 at the last step.',
          cosine: 'Fall along half a cosine to 0 at the last step.',
        },
        aliases: ['lr_scheduler_type', 'scheduler', 'lr_schedule'],
      },
      warmup_steps: {
        type: 'integer',
        default: 10,
        min: 0,
        description: 'Optimizer steps over which the learning rate rises linearly from 0 to learning_rate.',
        aliases: ['warmup', 'num_warmup_steps'],
      },
      weight_decay: {
        type: 'number',
        default: 0,
        min: 0,
        description: 'AdamW\'s decoupled weight decay on the adapter matrices.',
        aliases: ['wd'],
      },
      max_grad_norm: {
        type: 'number',
        default: 0.3,
        min: 0,
        description: 'Clip the global gradient norm to this before each step (the unclipped norm is reported); 0 turns clipping off.',
        aliases: ['grad_clip', 'clip_grad_norm', 'gradient_clipping', 'max_norm'],
      },
      seed: {
        type: 'integer',
        default: 42,
        min: 0,
        max: 4294967295,
        description: 'Seeds adapter initialization, dropout and data shuffling: the same seed gives the same run.',
        aliases: ['random_seed'],
      },
      eval_every: {
        type: 'integer',
        default: 50,
        min: 0,
        description: 'Evaluate on the held-out examples every this many optimizer steps; 0 turns evaluation off.',
        aliases: ['eval_steps', 'evaluation_steps', 'eval_interval'],
      },
      save_every: {
        type: 'integer',
        default: 100,
        min: 0,
        description: 'Write a checkpoint every this many optimizer steps, and always at the end; 0 saves only at the end.',
        aliases: ['save_steps', 'checkpoint_every', 'save_interval'],
      },
      backend: {
        type: 'enum',
        default: 'auto',
        description: 'Which TensorFlow.js backend computes the run.',
        values: {
          auto: 'The fastest one installed: tensorflow, then wasm, then cpu.',
          tensorflow: '@tensorflow/tfjs-node-gpu (CUDA) or @tensorflow/tfjs-node (native CPU), when installed.',
          wasm: 'WebAssembly with SIMD: the fastest portable choice.',
          cpu: 'Plain JavaScript kernels: slow; for tests and as a reference.',
          webgpu: 'WebGPU, where the runtime offers it.',
        },
        aliases: ['device'],
      },
    },
  },
  output: {
    description: 'Where the run writes its results.',
    keys: {
      dir: {
        type: 'path',
        target: 'folder',
        default: './runs/run',
        description: 'The run folder: adapter/, checkpoints/, metrics.jsonl, run.json and a copy of the resolved config.',
        aliases: ['output_dir', 'out', 'path'],
      },
    },
  },
} as const satisfies Readonly<Record<string, SectionSpec>>;

/** The per-value docs of `lora.target_modules`. */
export const MODULE_DOCS: Readonly<Record<LinearModule, string>> = {
  q_proj: 'Attention query projection (hidden -> heads x head_dim).',
  k_proj: 'Attention key projection (hidden -> kv_heads x head_dim).',
  v_proj: 'Attention value projection (hidden -> kv_heads x head_dim).',
  o_proj: 'Attention output projection (heads x head_dim -> hidden).',
  gate_proj: 'MLP gate projection, the SiLU branch of SwiGLU (hidden -> intermediate).',
  up_proj: 'MLP up projection, the linear branch of SwiGLU (hidden -> intermediate).',
  down_proj: 'MLP down projection (intermediate -> hidden).',
};

export type Schema = typeof SCHEMA;
export type SectionName = keyof Schema & string;

/** The value a key holds once parsed, with its default applied. */
type Declared<K> = K extends { type: 'integer' | 'number' }
  ? number
  : K extends { type: 'boolean' }
    ? boolean
    : K extends { type: 'enum'; values: infer V }
      ? keyof V & string
      : K extends { type: 'path' }
        ? string
        : K extends { type: 'modules' }
          ? LinearModule[]
          : never;
type Resolved<K> = K extends { default: unknown } | { required: true } ? Declared<K> : Declared<K> | undefined;

/**
 * A parsed `.qlora` file with every default applied, paths absolute and
 * `target_modules` spelled out. Meaningful only when parsing reported no error.
 */
export type ResolvedConfig = {
  -readonly [S in SectionName]: { -readonly [K in keyof Schema[S]['keys']]: Resolved<Schema[S]['keys'][K]> };
};

export type Quantization = ResolvedConfig['model']['quantization'];
export type DataFormatName = ResolvedConfig['data']['format'];
export type LrScheduler = ResolvedConfig['training']['lr_scheduler'];
export type BackendName = ResolvedConfig['training']['backend'];

/** One key with its section, for code that walks all of them. */
export interface KeyInfo {
  section: SectionName;
  name: string;
  /** `section.name`, the form messages use. */
  path: string;
  spec: KeySpec;
}

export const SECTION_NAMES = Object.keys(SCHEMA) as SectionName[];

export const ALL_KEYS: readonly KeyInfo[] = SECTION_NAMES.flatMap((section) =>
  Object.entries(SCHEMA[section].keys as Readonly<Record<string, KeySpec>>).map(([name, spec]) => ({
    section,
    name,
    path: `${section}.${name}`,
    spec,
  })),
);

const byPath = new Map(ALL_KEYS.map((k) => [k.path, k]));

export function findKey(section: string, name: string): KeyInfo | undefined {
  return byPath.get(`${section}.${name}`);
}

export function isSection(name: string): name is SectionName {
  return Object.prototype.hasOwnProperty.call(SCHEMA, name);
}

export function sectionKeys(section: SectionName): KeyInfo[] {
  return ALL_KEYS.filter((k) => k.section === section);
}

// A safetensors checkpoint written one tensor at a time, for outputs too large to gather in
// memory first. Every tensor's name and shape is known before the first byte is written, so
// each shard's header (offsets included) goes out first and the data follows in order. The
// files and their names are those writeSafetensorsSharded produces for the same tensors
// (test/merge/safetensorsStream.test.ts compares the bytes): `model.safetensors` when one
// shard suffices, else `model-0000k-of-0000n.safetensors` plus the index, written last.
import { closeSync, fsyncSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeAll } from '../formats/binaryFile';
import { float32BitsToBfloat16Bits, float32BitsToFloat16Bits } from '../formats/halfFloat';
import { encodeSafetensorsHeader, INDEX_FILE_NAME, shardFileName, SINGLE_FILE_NAME, type SafetensorsDtype } from '../formats/safetensors';

const BYTES_PER_ELEMENT: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };
/** Elements narrowed per write for 16-bit outputs: the only output buffer a merge holds. */
export const ENCODE_CHUNK = 1 << 20;

export interface PlannedTensor {
  name: string;
  shape: number[];
}

interface Shard {
  file: string;
  tensors: PlannedTensor[];
}

const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

export class SafetensorsStreamWriter {
  readonly files: string[];
  readonly index?: string;
  /** Bytes of tensor data in all shards. */
  readonly totalBytes: number;
  /** Finite values that became infinite when narrowed to float16, per tensor. */
  readonly overflows = new Map<string, number>();
  private readonly shards: Shard[];
  private shard = -1;
  private next = 0; // index of the next tensor within the current shard
  private fd: number | undefined;
  private readonly bits: Uint16Array;

  constructor(private readonly dir: string, tensors: PlannedTensor[], private readonly dtype: SafetensorsDtype, maxShardBytes: number) {
    if (!(maxShardBytes > 0)) throw new Error(`maxShardBytes must be positive, got ${maxShardBytes}`);
    const groups: PlannedTensor[][] = [[]];
    let current = 0;
    let total = 0;
    for (const t of tensors) {
      const bytes = count(t.shape) * BYTES_PER_ELEMENT[dtype];
      if (groups[groups.length - 1].length > 0 && current + bytes > maxShardBytes) {
        groups.push([]);
        current = 0;
      }
      groups[groups.length - 1].push(t);
      current += bytes;
      total += bytes;
    }
    this.totalBytes = total;
    this.shards = groups.map((g, i) => ({
      file: join(dir, groups.length === 1 ? SINGLE_FILE_NAME : shardFileName(i + 1, groups.length)), tensors: g,
    }));
    this.files = this.shards.map((s) => s.file);
    if (groups.length > 1) this.index = join(dir, INDEX_FILE_NAME);
    const largest = Math.max(0, ...tensors.map((t) => count(t.shape)));
    this.bits = new Uint16Array(dtype === 'F32' ? 0 : Math.min(largest, ENCODE_CHUNK));
  }

  /** Bytes of the writer's own buffer (the narrowing chunk of a 16-bit output). */
  get bufferBytes(): number {
    return this.bits.byteLength;
  }

  /** Appends the next tensor in plan order; `data` is float32, narrowed to the output dtype here. */
  write(name: string, data: Float32Array): void {
    if (this.fd === undefined || this.next === this.shards[this.shard].tensors.length) this.openNextShard();
    const planned = this.shards[this.shard].tensors[this.next];
    if (planned.name !== name) throw new Error(`tensor "${name}" written out of order: "${planned.name}" comes next`);
    if (data.length !== count(planned.shape)) throw new Error(`tensor "${name}": ${data.length} values for shape [${planned.shape.join(', ')}]`);
    const fd = this.fd!;
    if (this.dtype === 'F32') {
      writeAll(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    } else {
      const narrow = this.dtype === 'F16' ? float32BitsToFloat16Bits : float32BitsToBfloat16Bits;
      const src = new Uint32Array(data.buffer, data.byteOffset, data.length);
      let overflow = 0;
      for (let start = 0; start < data.length; start += this.bits.length) {
        const len = Math.min(this.bits.length, data.length - start);
        for (let i = 0; i < len; i++) {
          const h = narrow(src[start + i]);
          // Infinity out of a finite value: exponent all ones, mantissa zero, from an input exponent below 0xff.
          if ((h & 0x7fff) === (this.dtype === 'F16' ? 0x7c00 : 0x7f80) && ((src[start + i] >>> 23) & 0xff) !== 0xff) overflow++;
          this.bits[i] = h;
        }
        writeAll(fd, new Uint8Array(this.bits.buffer, 0, len * 2));
      }
      if (overflow) this.overflows.set(name, overflow);
    }
    this.next++;
  }

  /** Closes the last shard and writes the index; every planned tensor must have been written. */
  finish(): { files: string[]; index?: string } {
    const written = this.shard === this.shards.length - 1 && this.next === this.shards[this.shard].tensors.length;
    const empty = this.shards.length === 1 && this.shards[0].tensors.length === 0;
    if (empty && this.fd === undefined) this.openNextShard();
    else if (!written) throw new Error('finish() before every planned tensor was written');
    this.closeShard();
    if (this.index) {
      const weightMap: Record<string, string> = {};
      for (const s of this.shards) for (const t of s.tensors) weightMap[t.name] = s.file.slice(this.dir.length + 1);
      writeFileSync(this.index, JSON.stringify({ metadata: { total_size: this.totalBytes }, weight_map: weightMap }, null, 2) + '\n');
    }
    return { files: this.files, index: this.index };
  }

  /** Closes the open shard without finishing (after a failure; the caller removes the folder). */
  abort(): void {
    this.closeShard();
  }

  private openNextShard(): void {
    this.closeShard();
    this.shard++;
    this.next = 0;
    const s = this.shards[this.shard];
    if (!s) throw new Error('more tensors written than planned');
    this.fd = openSync(s.file, 'w');
    writeAll(this.fd, encodeSafetensorsHeader(s.tensors, this.dtype));
  }

  private closeShard(): void {
    if (this.fd !== undefined) {
      fsyncSync(this.fd);
      closeSync(this.fd);
    }
    this.fd = undefined;
  }
}

// A minimal ONNX ModelProto writer: just enough protobuf to describe a one-graph model of a
// few nodes with symbolic input dimensions, so the native provider can build its sessions
// in memory (no .onnx files shipped, no `onnx` package). Field numbers are onnx.proto3's.

/** A tensor input or output: element type (ONNX enum: 1 float, 2 uint8, 6 int32, 7 int64) and dims (number or symbolic name). */
export interface ValueInfo { name: string; elemType: number; dims: (number | string)[]; sequence?: boolean }
export type Attr = { name: string; f: number } | { name: string; i: number } | { name: string; ints: number[] };
export interface NodeSpec { opType: string; domain?: string; inputs: string[]; outputs: string[]; attrs?: Attr[] }
export interface GraphSpec { nodes: NodeSpec[]; inputs: ValueInfo[]; outputs: ValueInfo[] }

export const FLOAT = 1;
export const UINT8 = 2;
export const INT32 = 6;
export const INT64 = 7;

class Writer {
  private readonly parts: number[] = [];
  varint(v: number): this {
    // Non-negative values only (lengths, tags, enums, dims).
    let n = v;
    while (n >= 0x80) { this.parts.push((n % 0x80) | 0x80); n = Math.floor(n / 0x80); }
    this.parts.push(n);
    return this;
  }
  tag(field: number, wire: number): this { return this.varint(field * 8 + wire); }
  int(field: number, v: number): this {
    if (v < 0) throw new Error(`onnxGraph: negative int64 ${v} is not supported`);
    return this.tag(field, 0).varint(v);
  }
  bytes(field: number, b: Uint8Array): this {
    this.tag(field, 2).varint(b.length);
    for (const x of b) this.parts.push(x);
    return this;
  }
  str(field: number, s: string): this { return this.bytes(field, new TextEncoder().encode(s)); }
  msg(field: number, build: (w: Writer) => void): this {
    const w = new Writer();
    build(w);
    return this.bytes(field, w.finish());
  }
  float(field: number, v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.tag(field, 5);
    for (const x of b) this.parts.push(x);
    return this;
  }
  finish(): Uint8Array { return Uint8Array.from(this.parts); }
}

function tensorType(type: Writer, v: ValueInfo): void {
  type.msg(1, (tt) => {
    tt.int(1, v.elemType).msg(2, (shape) => {
      for (const d of v.dims) shape.msg(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.str(2, d)));
    });
  });
}

function valueInfo(w: Writer, v: ValueInfo): void {
  w.str(1, v.name).msg(2, (type) => (v.sequence ? type.msg(4, (seq) => seq.msg(1, (elem) => tensorType(elem, v))) : tensorType(type, v)));
}

function attribute(w: Writer, a: Attr): void {
  w.str(1, a.name);
  if ('f' in a) w.float(2, a.f).int(20, 1);
  else if ('i' in a) w.int(3, a.i).int(20, 2);
  else { for (const v of a.ints) w.int(8, v); w.int(20, 7); }
}

/** y = alpha op(a) op(b), op a transpose where asked: com.microsoft's FusedMatMul, whose transposes MLAS's packing takes (no copy). */
export function fusedMatMul(a: string, b: string, y: string, o: { alpha?: number; transA?: boolean; transB?: boolean } = {}): NodeSpec {
  return {
    opType: 'FusedMatMul', domain: 'com.microsoft', inputs: [a, b], outputs: [y],
    attrs: [{ name: 'alpha', f: o.alpha ?? 1 }, { name: 'transA', i: +(o.transA ?? false) }, { name: 'transB', i: +(o.transB ?? false) }],
  };
}

/** The serialized ModelProto (IR 8, opset 17 plus com.microsoft 1). */
export function encodeModel(g: GraphSpec): Uint8Array {
  const w = new Writer();
  w.int(1, 8); // ir_version
  w.str(2, 'qlora-studio');
  w.msg(7, (graph) => {
    g.nodes.forEach((n, k) => graph.msg(1, (node) => {
      for (const i of n.inputs) node.str(1, i);
      for (const o of n.outputs) node.str(2, o);
      node.str(3, `n${k}`).str(4, n.opType);
      for (const a of n.attrs ?? []) node.msg(5, (at) => attribute(at, a));
      if (n.domain) node.str(7, n.domain);
    }));
    graph.str(2, 'g');
    for (const v of g.inputs) graph.msg(11, (vi) => valueInfo(vi, v));
    for (const v of g.outputs) graph.msg(12, (vi) => valueInfo(vi, v));
  });
  w.msg(8, (op) => op.str(1, '').int(2, 17));
  w.msg(8, (op) => op.str(1, 'com.microsoft').int(2, 1));
  return w.finish();
}

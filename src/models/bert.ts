/**
 * BERT-base encoder (Devlin et al.; HuggingFace `bert-base-uncased` layout) with seeded random weights:
 * int64 token ids [N, seq] in, the pooled [CLS] vector [N, hidden] out. 12 layers, hidden 768, 12 heads,
 * intermediate 3072, vocabulary 30522, 512 positions, 2 token types: 109.5 M parameters with embeddings and
 * pooler. Token types are all 0 and the attention mask all ones (single unpadded sequences).
 */
import { GraphBuilder } from "./onnx_builder.ts";

export interface BertShape {
  layers: number;
  hidden: number;
  heads: number;
  intermediate: number;
  vocab: number;
  positions: number;
  sequence: number;
}

export const BERT_BASE: BertShape = {
  layers: 12,
  hidden: 768,
  heads: 12,
  intermediate: 3072,
  vocab: 30522,
  positions: 512,
  sequence: 128,
};

/** The built encoder and its multiply-accumulates per sample (matrix products). */
export interface BuiltBert {
  g: GraphBuilder;
  macs: number;
}

/** Builds BERT with `shape` (BERT-base by default). */
export function bert(dry = false, shape: BertShape = BERT_BASE): BuiltBert {
  const { layers, hidden: h, heads, intermediate, vocab, positions, sequence: s } = shape;
  const g = new GraphBuilder(110, { dry });
  const std = 0.02;
  let macs = 0;
  const dense = (x: string, cin: number, cout: number) => {
    const w = g.weight("dense_w", [cin, cout], std);
    const b = g.weight("dense_b", [cout], 0, 0);
    macs += s * cin * cout;
    return g.op("Add", [g.op("MatMul", [x, w]), b]);
  };
  const layerNorm = (x: string) =>
    g.op("LayerNormalization", [x, g.weight("ln_g", [h], 0, 1), g.weight("ln_b", [h], 0, 0)], {
      axis: -1,
      epsilon: { f: 1e-12 },
    });

  const ids = g.input("input_ids", ["N", s], "int64");
  const wordEmb = g.weight("word_emb", [vocab, h], std);
  const posEmb = g.weight("pos_emb", [positions, h], std);
  const typeEmb = g.weight("type_emb", [2, h], std);
  const positionIds = g.int64("position_ids", Array.from({ length: s }, (_, i) => i));
  const typeIds = g.int64("type_ids", new Array(s).fill(0));
  let x = g.op("Add", [
    g.op("Add", [g.op("Gather", [wordEmb, ids]), g.op("Gather", [posEmb, positionIds])]),
    g.op("Gather", [typeEmb, typeIds]),
  ]);
  x = layerNorm(x);

  const dh = h / heads;
  const split = g.int64("split_shape", [0, s, heads, dh]);
  const merge = g.int64("merge_shape", [0, s, h]);
  const scale = g.float("attn_scale", [1 / Math.sqrt(dh)], []);
  const half = g.float("half", [0.5], []);
  const one = g.float("one", [1], []);
  const invSqrt2 = g.float("inv_sqrt2", [Math.SQRT1_2], []);
  const toHeads = (t: string, perm: number[]) => g.op("Transpose", [g.op("Reshape", [t, split])], { perm });
  for (let l = 0; l < layers; l++) {
    const q = toHeads(dense(x, h, h), [0, 2, 1, 3]); // [N, heads, s, dh]
    const kT = toHeads(dense(x, h, h), [0, 2, 3, 1]); // [N, heads, dh, s]
    const v = toHeads(dense(x, h, h), [0, 2, 1, 3]);
    const scores = g.op("Softmax", [g.op("Mul", [g.op("MatMul", [q, kT]), scale])], { axis: -1 });
    const context = g.op("MatMul", [scores, v]);
    macs += 2 * s * s * h;
    const merged = g.op("Reshape", [g.op("Transpose", [context], { perm: [0, 2, 1, 3] }), merge]);
    x = layerNorm(g.op("Add", [dense(merged, h, h), x]));
    // GELU (erf form), as BERT defines it.
    const up = dense(x, h, intermediate);
    const gelu = g.op("Mul", [g.op("Mul", [up, half]), g.op("Add", [g.op("Erf", [g.op("Mul", [up, invSqrt2])]), one])]);
    x = layerNorm(g.op("Add", [dense(gelu, intermediate, h), x]));
  }
  // Pooler: tanh(W · h[CLS] + b).
  const cls = g.op("Gather", [x, g.int64("cls_index", [0])], { axis: 1 }); // [N, 1, h]
  const flat = g.op("Flatten", [cls], { axis: 1 });
  const pw = g.weight("pool_w", [h, h], std);
  const pb = g.weight("pool_b", [h], 0, 0);
  macs += h * h;
  g.op("Tanh", [g.op("Gemm", [flat, pw, pb])], {}, "pooled");
  g.output("pooled", ["N", h]);
  return { g, macs };
}

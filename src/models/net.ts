/**
 * Layer-level helpers over {@link GraphBuilder} for convolutional networks: each call adds ONNX nodes, keeps
 * track of the feature map's shape, and counts parameters and multiply-accumulates per sample (convolutions
 * and fully connected layers, the convention of the published figures). Batch norm after a convolution is
 * folded into its bias, as in exported inference graphs.
 */
import { GraphBuilder } from "./onnx_builder.ts";

/** A feature map: tensor name and its per-sample shape (channels × height × width). */
export interface Fmap {
  name: string;
  c: number;
  h: number;
  w: number;
}

export type Activation = "relu" | "relu6" | "none";

/** Output size of a window op along one axis. */
export function outSize(size: number, k: number, stride: number, pad: number, ceil = false): number {
  const span = size + 2 * pad - k;
  let out = (ceil ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
  // PyTorch (and ONNX) drop a last ceil-mode window that would start entirely in the padding.
  if (ceil && (out - 1) * stride >= size + pad) out--;
  return out;
}

/** A convolutional network under construction. */
export class Net {
  readonly g: GraphBuilder;
  /** Multiply-accumulates per sample so far. */
  macs = 0;
  private relu6Bounds?: [string, string];

  constructor(seed: number, dry = false) {
    this.g = new GraphBuilder(seed, { dry });
  }

  /** The image input `input` [N, c, h, w]. */
  input(c: number, h: number, w: number): Fmap {
    return { name: this.g.input("input", ["N", c, h, w]), c, h, w };
  }

  activate(x: Fmap, act: Activation): Fmap {
    if (act === "none") return x;
    if (act === "relu") return { ...x, name: this.g.op("Relu", [x.name]) };
    this.relu6Bounds ??= [this.g.float("zero", [0], []), this.g.float("six", [6], [])];
    return { ...x, name: this.g.op("Clip", [x.name, ...this.relu6Bounds]) };
  }

  /** Convolution (+ folded batch norm) + activation. `pad` defaults to "same" for odd kernels. */
  conv(
    x: Fmap,
    cout: number,
    k: number,
    opts: { stride?: number; pad?: number; groups?: number; act?: Activation } = {},
  ): Fmap {
    const stride = opts.stride ?? 1;
    const pad = opts.pad ?? Math.floor(k / 2);
    const groups = opts.groups ?? 1;
    const cinPerGroup = x.c / groups;
    const w = this.g.weight("conv_w", [cout, cinPerGroup, k, k], Math.sqrt(2 / (cinPerGroup * k * k)));
    const b = this.g.weight("conv_b", [cout], 0, 0);
    const attrs = { kernel_shape: [k, k], strides: [stride, stride], pads: [pad, pad, pad, pad], group: groups };
    const h = outSize(x.h, k, stride, pad);
    const wd = outSize(x.w, k, stride, pad);
    this.macs += cout * cinPerGroup * k * k * h * wd;
    const y = { name: this.g.op("Conv", [x.name, w, b], attrs), c: cout, h, w: wd };
    return this.activate(y, opts.act ?? "relu");
  }

  /** Batch norm on its own (pre-activation networks): a per-channel scale and shift, 2 parameters per channel. */
  batchNorm(x: Fmap): Fmap {
    const scale = this.g.weight("bn_scale", [1, x.c, 1, 1], 0, 1);
    const shift = this.g.weight("bn_shift", [1, x.c, 1, 1], 0, 0);
    return { ...x, name: this.g.op("Add", [this.g.op("Mul", [x.name, scale]), shift]) };
  }

  maxPool(x: Fmap, k: number, stride: number, pad = 0, ceil = false): Fmap {
    const attrs = {
      kernel_shape: [k, k],
      strides: [stride, stride],
      pads: [pad, pad, pad, pad],
      ceil_mode: ceil ? 1 : 0,
    };
    return {
      name: this.g.op("MaxPool", [x.name], attrs),
      c: x.c,
      h: outSize(x.h, k, stride, pad, ceil),
      w: outSize(x.w, k, stride, pad, ceil),
    };
  }

  avgPool(x: Fmap, k: number, stride: number): Fmap {
    const attrs = { kernel_shape: [k, k], strides: [stride, stride] };
    return {
      name: this.g.op("AveragePool", [x.name], attrs),
      c: x.c,
      h: outSize(x.h, k, stride, 0),
      w: outSize(x.w, k, stride, 0),
    };
  }

  add(a: Fmap, b: Fmap): Fmap {
    return { ...a, name: this.g.op("Add", [a.name, b.name]) };
  }

  concat(xs: Fmap[]): Fmap {
    return {
      name: this.g.op("Concat", xs.map((x) => x.name), { axis: 1 }),
      c: xs.reduce((s, x) => s + x.c, 0),
      h: xs[0].h,
      w: xs[0].w,
    };
  }

  /** Global average pool and flatten: [N, c]. */
  pool(x: Fmap): { name: string; features: number } {
    const pooled = this.g.op("GlobalAveragePool", [x.name]);
    return { name: this.g.op("Flatten", [pooled], { axis: 1 }), features: x.c };
  }

  /** Flatten a feature map: [N, c·h·w]. */
  flatten(x: Fmap): { name: string; features: number } {
    return { name: this.g.op("Flatten", [x.name], { axis: 1 }), features: x.c * x.h * x.w };
  }

  /** Fully connected layer on [N, in]. */
  linear(x: { name: string; features: number }, out: number, act: Activation = "none", name?: string) {
    const w = this.g.weight("fc_w", [x.features, out], Math.sqrt(1 / x.features));
    const b = this.g.weight("fc_b", [out], 0, 0);
    this.macs += x.features * out;
    let y = this.g.op("Gemm", [x.name, w, b], {}, act === "none" ? name : undefined);
    if (act === "relu") y = this.g.op("Relu", [y], {}, name);
    return { name: y, features: out };
  }

  /** Declares the classifier output `logits` [N, classes]. */
  logits(x: { name: string; features: number }, classes: number): GraphBuilder {
    const y = this.linear(x, classes, "none", "logits");
    this.g.output(y.name, ["N", classes]);
    return this.g;
  }
}

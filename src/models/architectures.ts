/**
 * Model architectures built with {@link GraphBuilder}. Pure: each returns a builder ready to encode.
 * Batch norm is folded into convolution biases, as in exported inference graphs.
 */
import { GraphBuilder } from "./onnx_builder.ts";

function conv(
  g: GraphBuilder,
  x: string,
  cin: number,
  cout: number,
  k: number,
  stride: number,
  pad: number,
  relu = true,
): string {
  const w = g.weight("conv_w", [cout, cin, k, k], Math.sqrt(2 / (cin * k * k)));
  const b = g.weight("conv_b", [cout], 0, 0);
  const y = g.op("Conv", [x, w, b], { kernel_shape: [k, k], strides: [stride, stride], pads: [pad, pad, pad, pad] });
  return relu ? g.op("Relu", [y]) : y;
}

function linear(g: GraphBuilder, x: string, cin: number, cout: number, name?: string): string {
  const w = g.weight("fc_w", [cin, cout], Math.sqrt(1 / cin));
  const b = g.weight("fc_b", [cout], 0, 0);
  return g.op("Gemm", [x, w, b], {}, name);
}

/** LeNet-5 (the classic MNIST network): 1×28×28 → 10 logits, 61,706 parameters. */
export function lenet5(dry = false): GraphBuilder {
  const g = new GraphBuilder(5, { dry });
  let x = g.input("input", ["N", 1, 28, 28]);
  x = conv(g, x, 1, 6, 5, 1, 2);
  x = g.op("MaxPool", [x], { kernel_shape: [2, 2], strides: [2, 2] });
  x = conv(g, x, 6, 16, 5, 1, 0);
  x = g.op("MaxPool", [x], { kernel_shape: [2, 2], strides: [2, 2] });
  x = g.op("Flatten", [x], { axis: 1 });
  x = g.op("Relu", [linear(g, x, 400, 120)]);
  x = g.op("Relu", [linear(g, x, 120, 84)]);
  linear(g, x, 84, 10, "logits");
  g.output("logits", ["N", 10]);
  return g;
}

/**
 * A ResNet with basic blocks: depths [2,2,2,2] is ResNet-18's shape. `width` scales the channels and
 * `resolution` the input, so small variants stay quick on a CPU.
 */
export function resnetBasic(
  depths = [2, 2, 2, 2],
  width = 64,
  resolution = 224,
  classes = 1000,
  dry = false,
): GraphBuilder {
  const g = new GraphBuilder(18, { dry });
  let x = g.input("input", ["N", 3, resolution, resolution]);
  x = conv(g, x, 3, width, 7, 2, 3);
  x = g.op("MaxPool", [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  let cin = width;
  depths.forEach((blocks, stage) => {
    const cout = width * 2 ** stage;
    for (let i = 0; i < blocks; i++) {
      const stride = stage > 0 && i === 0 ? 2 : 1;
      const shortcut = stride !== 1 || cin !== cout ? conv(g, x, cin, cout, 1, stride, 0, false) : x;
      let y = conv(g, x, cin, cout, 3, stride, 1);
      y = conv(g, y, cout, cout, 3, 1, 1, false);
      x = g.op("Relu", [g.op("Add", [y, shortcut])]);
      cin = cout;
    }
  });
  x = g.op("Flatten", [g.op("GlobalAveragePool", [x])], { axis: 1 });
  linear(g, x, cin, classes, "logits");
  g.output("logits", ["N", classes]);
  return g;
}

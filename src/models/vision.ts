/**
 * The image models the Gpu-let paper served, layer for layer as torchvision defines them (batch norm folded
 * into convolutions, seeded random weights): 3×224×224 → 1000 logits. Each returns its {@link Net}, whose
 * builder encodes the model and whose counters give parameters and MACs per sample.
 */
import { type Fmap, Net } from "./net.ts";

/** GoogLeNet (Inception v1) without the auxiliary heads. torchvision: 6.62 M params, 1.5 GMACs. */
export function googlenet(dry = false): Net {
  const n = new Net(101, dry);
  const inception = (x: Fmap, c1: number, c3r: number, c3: number, c5r: number, c5: number, pool: number) =>
    n.concat([
      n.conv(x, c1, 1),
      n.conv(n.conv(x, c3r, 1), c3, 3),
      // torchvision's "5x5" branch uses a 3x3 convolution (a known quirk kept for weight compatibility).
      n.conv(n.conv(x, c5r, 1), c5, 3),
      n.conv(n.maxPool(x, 3, 1, 1, true), pool, 1),
    ]);
  let x = n.input(3, 224, 224);
  x = n.conv(x, 64, 7, { stride: 2, pad: 3 });
  x = n.maxPool(x, 3, 2, 0, true);
  x = n.conv(x, 64, 1);
  x = n.conv(x, 192, 3);
  x = n.maxPool(x, 3, 2, 0, true);
  x = inception(x, 64, 96, 128, 16, 32, 32);
  x = inception(x, 128, 128, 192, 32, 96, 64);
  x = n.maxPool(x, 3, 2, 0, true);
  x = inception(x, 192, 96, 208, 16, 48, 64);
  x = inception(x, 160, 112, 224, 24, 64, 64);
  x = inception(x, 128, 128, 256, 24, 64, 64);
  x = inception(x, 112, 144, 288, 32, 64, 64);
  x = inception(x, 256, 160, 320, 32, 128, 128);
  x = n.maxPool(x, 2, 2, 0, true);
  x = inception(x, 256, 160, 320, 32, 128, 128);
  x = inception(x, 384, 192, 384, 48, 128, 128);
  n.logits(n.pool(x), 1000);
  return n;
}

/** ResNet-50 (bottleneck blocks, stride on the 3×3 as torchvision's v1.5). 25.56 M params, 4.1 GMACs. */
export function resnet50(dry = false): Net {
  const n = new Net(50, dry);
  let x = n.input(3, 224, 224);
  x = n.conv(x, 64, 7, { stride: 2, pad: 3 });
  x = n.maxPool(x, 3, 2, 1);
  [3, 4, 6, 3].forEach((blocks, stage) => {
    const width = 64 * 2 ** stage;
    for (let i = 0; i < blocks; i++) {
      const stride = stage > 0 && i === 0 ? 2 : 1;
      const shortcut = i === 0 ? n.conv(x, width * 4, 1, { stride, act: "none" }) : x;
      let y = n.conv(x, width, 1);
      y = n.conv(y, width, 3, { stride });
      y = n.conv(y, width * 4, 1, { act: "none" });
      x = n.activate(n.add(y, shortcut), "relu");
    }
  });
  n.logits(n.pool(x), 1000);
  return n;
}

/** VGG-16 (configuration D, no batch norm). 138.36 M params, 15.5 GMACs. */
export function vgg16(dry = false): Net {
  const n = new Net(16, dry);
  let x = n.input(3, 224, 224);
  for (const v of [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"] as const) {
    x = v === "M" ? n.maxPool(x, 2, 2) : n.conv(x, v, 3);
  }
  // The adaptive 7×7 average pool is the identity at 224×224.
  let f = n.flatten(x);
  f = n.linear(f, 4096, "relu");
  f = n.linear(f, 4096, "relu");
  n.logits(f, 1000);
  return n;
}

/** MobileNetV2 (width 1.0). 3.50 M params, 0.30 GMACs. */
export function mobilenetV2(dry = false): Net {
  const n = new Net(2, dry);
  let x = n.input(3, 224, 224);
  x = n.conv(x, 32, 3, { stride: 2, act: "relu6" });
  const settings = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [
    6,
    320,
    1,
    1,
  ]];
  for (const [t, c, reps, s] of settings) {
    for (let i = 0; i < reps; i++) {
      const stride = i === 0 ? s : 1;
      const hidden = x.c * t;
      let y = t === 1 ? x : n.conv(x, hidden, 1, { act: "relu6" });
      y = n.conv(y, hidden, 3, { stride, groups: hidden, act: "relu6" });
      y = n.conv(y, c, 1, { act: "none" });
      x = stride === 1 && x.c === c ? n.add(y, x) : y;
    }
  }
  x = n.conv(x, 1280, 1, { act: "relu6" });
  n.logits(n.pool(x), 1000);
  return n;
}

/** MNASNet 1.0 (torchvision's `mnasnet1_0`). 4.38 M params, 0.31 GMACs. */
export function mnasnet1_0(dry = false): Net {
  const n = new Net(10, dry);
  let x = n.input(3, 224, 224);
  x = n.conv(x, 32, 3, { stride: 2 });
  x = n.conv(x, 32, 3, { groups: 32 });
  x = n.conv(x, 16, 1, { act: "none" });
  const stacks = [[24, 3, 2, 3, 3], [40, 5, 2, 3, 3], [80, 5, 2, 6, 3], [96, 3, 1, 6, 2], [192, 5, 2, 6, 4], [
    320,
    3,
    1,
    6,
    1,
  ]];
  for (const [out, k, s, expansion, reps] of stacks) {
    for (let i = 0; i < reps; i++) {
      const stride = i === 0 ? s : 1;
      const mid = x.c * expansion;
      let y = n.conv(x, mid, 1);
      y = n.conv(y, mid, k, { stride, groups: mid });
      y = n.conv(y, out, 1, { act: "none" });
      x = stride === 1 && x.c === out ? n.add(y, x) : y;
    }
  }
  x = n.conv(x, 1280, 1);
  n.logits(n.pool(x), 1000);
  return n;
}

/**
 * DenseNet-161 (growth 48, blocks 6-12-36-24, 96 initial features). Its batch norms come before the
 * convolutions (pre-activation), so they stay as a per-channel scale and shift. 28.7 M params, 7.7 GMACs.
 */
export function densenet161(dry = false): Net {
  const n = new Net(161, dry);
  const growth = 48;
  let x = n.input(3, 224, 224);
  x = n.conv(x, 96, 7, { stride: 2, pad: 3 });
  x = n.maxPool(x, 3, 2, 1);
  [6, 12, 36, 24].forEach((layers, block) => {
    for (let i = 0; i < layers; i++) {
      let y = n.activate(n.batchNorm(x), "relu");
      y = n.conv(y, 4 * growth, 1);
      y = n.conv(y, growth, 3, { act: "none" });
      x = n.concat([x, y]);
    }
    if (block < 3) {
      x = n.conv(n.activate(n.batchNorm(x), "relu"), x.c / 2, 1, { act: "none" });
      x = n.avgPool(x, 2, 2);
    }
  });
  x = n.activate(n.batchNorm(x), "relu");
  n.logits(n.pool(x), 1000);
  return n;
}

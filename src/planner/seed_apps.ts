/**
 * The seed's applications (`../shared/reference/gpulet-digest.md` §4.1) on the H100 profile: SLOs are the
 * paper's 2080 Ti ones × 0.06 (as `resource/workloads/game.json`), ssd is served by mobilenet_v2 (its
 * backbone), and a frame gives two crops.
 */
import type { AppGraph } from "./app_split.ts";

/** traffic: a detector, then each crop to googlenet and vgg16 side by side; app SLO 202 ms × 0.06. */
export const TRAFFIC: AppGraph = {
  name: "traffic",
  sloMs: 202 * 0.06,
  levels: [
    [{ name: "detect", model: "mobilenet_v2", maxBatch: 32, fanOut: 1 }],
    [
      { name: "classify", model: "googlenet", maxBatch: 32, fanOut: 2 },
      { name: "recognise", model: "vgg16", maxBatch: 32, fanOut: 2 },
    ],
  ],
};

/** game: resnet50 on the frame beside lenet on six digit crops; app SLO 108 ms × 0.06. */
export const GAME: AppGraph = {
  name: "game",
  sloMs: 108 * 0.06,
  levels: [[
    { name: "frame", model: "resnet50", maxBatch: 32, fanOut: 1 },
    { name: "digits", model: "lenet", maxBatch: 32, fanOut: 6 },
  ]],
};

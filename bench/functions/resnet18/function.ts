/** Benchmark function: a ResNet-18-shaped model (generated), Open Inference Protocol tensors only. */
import { defineFunction } from "gpulet";

export default defineFunction({ model: "resnet18", sloMs: 5000, maxBatch: 8 });

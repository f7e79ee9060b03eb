/// <reference lib="dom" />
/**
 * End to end in a real browser: headless Chromium (Debian's, driven by playwright-core) opens `/ui` of a
 * controller on `sim:h100x4` under load; the GPU bars and their labels match `GET /admin/plan`, the page
 * updates live, and a screenshot is saved (`GPULET_SCREENSHOT=path`, default a temporary file).
 *
 * Chromium comes from Debian (`scripts/setup.ts`, run by `deno task test`, installs it); `GPULET_CHROMIUM` overrides the path.
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { runOpenLoop } from "../../src/loadgen/open_loop.ts";
import { Schedule } from "../../src/loadgen/schedule.ts";
import { discoverTargets } from "../../src/api/load_targets.ts";
import { deploy, modelFunctionFolder, startTestServer, waitFor } from "../helpers.ts";

const CHROMIUM = Deno.env.get("GPULET_CHROMIUM") ?? "/usr/bin/chromium";

/** A plan's GPUs as the page should draw them: per GPU, each gpu-let's part and function names. */
function expectedBars(plan: { gpus: { id: number; gpulets: { part: number; functions: { name: string }[] }[] }[] }) {
  return plan.gpus.map((g) => ({
    gpu: String(g.id),
    gpulets: g.gpulets.map((l) => ({ part: String(l.part), functions: l.functions.map((f) => f.name).join(",") })),
  }));
}

Deno.test("dashboard in headless Chromium: bars and labels match /admin/plan, live under load", async () => {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set GPULET_CHROMIUM)`);
  }
  const server = await startTestServer({ devices: "sim:h100x4", simScale: 100 });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  try {
    const fns = [["bert", "bert", 20], ["lenet", "lenet", 1], ["resnet50", "resnet50", 50]] as const;
    for (const [name, model, slo] of fns) await deploy(server, await modelFunctionFolder(name, model, slo));
    const loadStart = performance.now();
    const load = runOpenLoop({
      url: new URL(server.url),
      targets: await discoverTargets(server.url, fns.map((f) => f[0])),
      schedule: Schedule.parse("time_s,function,rate\n0,bert,40\n0,lenet,20\n0,resnet50,15\n"),
      seconds: 12,
      seed: 5,
    });

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`${server.url}/ui`);
    await page.waitForSelector("[data-gpu] .gpulet");

    // Let the autoscaler settle to the load, then compare what is drawn with the plan in force.
    await waitFor("a plan that carries the load", async () => {
      const plan = await (await fetch(`${server.url}/admin/plan`)).json();
      return plan.gpusInUse >= 2;
    }, 15_000);
    let matched = false;
    let last = "";
    for (let i = 0; i < 20 && !matched; i++) {
      const planBefore = expectedBars(await (await fetch(`${server.url}/admin/plan`)).json());
      // The next event carries the plan as it is now.
      const seen = await page.evaluate(() => document.body.dataset.updated ?? "");
      await page.waitForFunction((prev) => (document.body.dataset.updated ?? "") !== prev, seen, { timeout: 5000 });
      const drawn = await page.$$eval("[data-gpu]", (gpus) =>
        gpus.map((g) => ({
          gpu: (g as HTMLElement).dataset.gpu!,
          gpulets: [...g.querySelectorAll<HTMLElement>(".gpulet")].map((l) => ({
            part: l.dataset.part!,
            functions: l.dataset.functions!,
          })),
        })));
      const planAfter = expectedBars(await (await fetch(`${server.url}/admin/plan`)).json());
      last = JSON.stringify({ drawn, planBefore, planAfter });
      // A re-plan between the two reads leaves nothing to compare: look again.
      matched = JSON.stringify(planBefore) === JSON.stringify(planAfter) &&
        JSON.stringify(drawn) === JSON.stringify(planAfter);
    }
    assert.ok(matched, `bars differ from /admin/plan: ${last}`);

    // Labels: each gpu-let names its functions and batch sizes; the header counts GPUs in use. The autoscaler
    // may re-plan between reading the plan and reading the page: compare only when the plan held still.
    let labelled = false;
    let seenLabel = "";
    for (let i = 0; i < 20 && !labelled; i++) {
      const plan = await (await fetch(`${server.url}/admin/plan`)).json();
      const first = plan.gpus[0].gpulets[0];
      const label = await page.locator(`[data-gpu="${plan.gpus[0].id}"] .gpulet`).first().innerText();
      const inUse = await page.locator("#gpus-in-use").innerText();
      const again = await (await fetch(`${server.url}/admin/plan`)).json();
      seenLabel = JSON.stringify({ label, first });
      if (JSON.stringify(again.gpus) !== JSON.stringify(plan.gpus)) continue;
      const names = first.functions.every((f: { name: string; batch: number }) =>
        new RegExp(`${f.name}\\s+b${f.batch}`).test(label)
      );
      if (!names || !label.includes(`${first.part}%`) || inUse !== String(plan.gpusInUse)) {
        // The page may still show the plan before this one: its next event brings the current one.
        const updated = await page.evaluate(() => document.body.dataset.updated ?? "");
        // No event within 5 s: try again; after 20 tries the assertion below says what the page showed.
        await page.waitForFunction((prev) => (document.body.dataset.updated ?? "") !== prev, updated, {
          timeout: 5000,
        }).catch(() => {});
        continue;
      }
      labelled = true;
    }
    assert.ok(labelled, `gpu-let label differs from /admin/plan: ${seenLabel}`);
    assert.equal(await page.locator("#devices").innerText(), "4");

    // Per-function rows with a live rate; sparklines drawn; plan changes listed.
    await page.waitForFunction(
      () => {
        const cell = document.querySelector('[data-function="bert"] .rate');
        return cell !== null && Number(cell.textContent) > 0;
      },
      undefined,
      { timeout: 10_000 },
    );
    assert.equal(await page.locator("tr[data-function]").count(), 3);
    assert.ok(await page.locator('tr[data-function="lenet"] svg.spark path').count() >= 3);
    assert.ok(await page.locator("#changes li").count() >= 3, "deploys and re-plans are listed");
    assert.match(await page.locator("#conn").innerText(), /^live/);

    // The screenshot near the end of the load, with most of its minute of sparklines drawn.
    await new Promise((r) => setTimeout(r, Math.max(0, loadStart + 11_000 - performance.now())));
    const path = Deno.env.get("GPULET_SCREENSHOT") ?? await Deno.makeTempFile({ suffix: ".png" });
    await page.screenshot({ path, fullPage: true });
    assert.ok((await Deno.stat(path)).size > 10_000, "a screenshot with something on it");
    await load;
  } finally {
    await browser.close();
    await server.shutdown();
  }
});

Deno.test("dashboard stays readable with 8 GPUs and 20 functions", async () => {
  const server = await startTestServer({ devices: "sim:h100x8", simScale: 100 });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  try {
    const models = ["lenet", "googlenet", "resnet50", "bert"];
    for (let i = 0; i < 20; i++) {
      const model = models[i % models.length];
      await deploy(server, await modelFunctionFolder(`${model}-${i}`, model, model === "lenet" ? 1 : 50));
    }
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`${server.url}/ui`);
    await page.waitForSelector("tr[data-function]");
    assert.equal(await page.locator("tr[data-function]").count(), 20);
    // Nothing spills sideways: the page is as wide as the window.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - globalThis.innerWidth);
    assert.ok(overflow <= 0, `page ${overflow} px wider than the window`);
    // Every gpu-let segment has a label or a tooltip naming its functions.
    const segments = await page.$$eval(".gpulet", (ls) => ls.map((l) => (l as HTMLElement).title));
    assert.ok(segments.length >= 1 && segments.every((t) => /% of GPU \d+: /.test(t)), JSON.stringify(segments));
    const path = Deno.env.get("GPULET_SCREENSHOT_LARGE") ?? await Deno.makeTempFile({ suffix: ".png" });
    await page.screenshot({ path, fullPage: true });
  } finally {
    await browser.close();
    await server.shutdown();
  }
});

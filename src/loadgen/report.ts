/** A load report as text people read, and its timeline as an SVG plot. */
import type { LoadReport, LoadStats } from "./open_loop.ts";

const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
const ms = (x: number | null) => (x === null ? "-" : `${x.toFixed(1)} ms`);

function row(name: string, s: LoadStats): string {
  const errors = Object.entries(s.errors).map(([k, v]) => `${k}:${v}`).join(" ") || "0";
  return `| ${name} | ${s.sent} | ${s.answered} | ${s.ok} | ${s.rejected} | ${errors} | ${s.lost} | ` +
    `${pct(s.attainment)} | ${s.goodput.toFixed(1)}/s | ${ms(s.p50Ms)} | ${ms(s.p99Ms)} |`;
}

/** A markdown summary: one row per function and one overall. */
export function summarize(r: LoadReport): string {
  return [
    `${r.seconds} s, arrivals ${r.cv === 1 ? "Poisson" : `Gamma (CV ${r.cv})`}, seed ${r.seed}`,
    "",
    "| function | sent | answered | 2xx | 429 | other errors | lost | within SLO | goodput | p50 | p99 |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
    ...Object.entries(r.functions).map(([n, s]) => row(n, s)),
    row("**all**", r.overall),
    ...(r.stages && Object.keys(r.stages).length
      ? [
        "",
        "Apps' stages, as the server counted them over the run (within: answered by the stage's deadline):",
        "",
        "| app | stage function | calls | within |",
        "|---|---|---|---|",
        ...Object.entries(r.stages).flatMap(([app, fns]) =>
          Object.entries(fns).map(([fn, c]) =>
            `| ${app} | ${fn} | ${c.calls} | ${c.calls ? pct(c.within / c.calls) : "-"} |`
          )
        ),
      ]
      : []),
  ].join("\n");
}

/**
 * The timeline as SVG: offered rate and goodput (req/s), SLO attainment (%), GPUs in use, per second,
 * stacked on one time axis.
 */
export function timelineSvg(r: LoadReport, title = "load timeline"): string {
  const W = 900, H = 150, L = 60, R = 20, GAP = 40, TOP = 30;
  const n = Math.max(1, r.timeline.length);
  const x = (t: number) => L + ((W - L - R) * t) / n;
  const panels: { label: string; series: { color: string; name: string; ys: (number | null)[] }[]; max: number }[] = [
    {
      label: "req/s",
      series: [
        { color: "#888", name: "sent", ys: r.timeline.map((s) => s.sent) },
        { color: "#1a7f37", name: "within SLO", ys: r.timeline.map((s) => s.good) },
        { color: "#cf222e", name: "429", ys: r.timeline.map((s) => s.rejected) },
      ],
      max: Math.max(1, ...r.timeline.map((s) => s.sent)),
    },
    {
      label: "attainment %",
      series: [{
        color: "#0969da",
        name: "within SLO / sent",
        ys: r.timeline.map((s) => (s.attainment === null ? null : 100 * s.attainment)),
      }],
      max: 100,
    },
    {
      label: "GPUs in use",
      series: [{ color: "#8250df", name: "GPUs", ys: r.timeline.map((s) => s.gpus) }],
      max: Math.max(1, ...r.timeline.map((s) => s.gpus ?? 0)),
    },
  ];
  const parts: string[] = [];
  panels.forEach((p, i) => {
    const top = TOP + i * (H + GAP);
    const y = (v: number) => top + H - (H * v) / p.max;
    parts.push(`<rect x="${L}" y="${top}" width="${W - L - R}" height="${H}" fill="none" stroke="#ccc"/>`);
    parts.push(`<text x="${L - 6}" y="${top + 10}" text-anchor="end">${p.max.toFixed(0)}</text>`);
    parts.push(`<text x="${L - 6}" y="${top + H}" text-anchor="end">0</text>`);
    parts.push(`<text x="${L + 4}" y="${top - 6}" font-weight="bold">${p.label}</text>`);
    p.series.forEach((s, k) => {
      const pts: string[] = [];
      let path = "";
      s.ys.forEach((v, t) => {
        if (v === null) {
          if (pts.length) path += `<polyline fill="none" stroke="${s.color}" points="${pts.join(" ")}"/>`;
          pts.length = 0;
          return;
        }
        pts.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`, `${x(t + 1).toFixed(1)},${y(v).toFixed(1)}`);
      });
      if (pts.length) path += `<polyline fill="none" stroke="${s.color}" points="${pts.join(" ")}"/>`;
      parts.push(path);
      parts.push(
        `<text x="${W - R - 4 - 110 * k}" y="${top - 6}" text-anchor="end" fill="${s.color}">${s.name}</text>`,
      );
    });
  });
  const bottom = TOP + panels.length * (H + GAP) - GAP;
  for (let t = 0; t <= n; t += Math.max(1, Math.ceil(n / 10 / 5) * 5)) {
    parts.push(`<text x="${x(t).toFixed(1)}" y="${bottom + 16}" text-anchor="middle">${t}s</text>`);
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${bottom + 30}" ` +
    `font-family="sans-serif" font-size="11">\n<title>${title}</title>\n${parts.join("\n")}\n</svg>\n`;
}

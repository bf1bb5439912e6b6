// Serves the built demo page (client/demo/dist, built by `npm run build --workspace client`) and
// its /config.json (the worker's URL, a signed-in user's token, the workspace and board) on
// loopback. Used by the dev command and the frontend's end-to-end test.
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, join, normalize } from "node:path";
import { ROOT } from "./stack.mjs";

const DIST = join(ROOT, "client", "demo", "dist");
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".json": "application/json", ".png": "image/png", ".svg": "image/svg+xml" };

/**
 * Starts the demo server on `port` (0: a free one). `config` is what the page reads from
 * /config.json. Resolves to `{url, close}`.
 */
export async function serveDemo({ port = 0, config }) {
  const server = createServer(async (req, res) => {
    const path = new URL(req.url ?? "/", "http://demo").pathname;
    if (path === "/config.json") {
      res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-store" });
      return res.end(JSON.stringify(config));
    }
    const file = normalize(join(DIST, path === "/" ? "index.html" : path));
    if (!file.startsWith(DIST)) {
      res.writeHead(403);
      return res.end();
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404, { "Content-Type": "text/plain" });
      res.end(path === "/" ? "the demo is not built: npm run build --workspace client" : "not found");
    }
  });
  await new Promise((resolve, reject) => server.once("error", reject).listen(port, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return { url, close: () => new Promise((resolve) => server.close(resolve)) };
}

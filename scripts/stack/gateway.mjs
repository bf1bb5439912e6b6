// The local Supabase gateway, a process of its own so that nothing blocking its parent's event
// loop (a synchronous psql or curl in a test) stalls the worker's membership checks: serves
// PostgREST at /rest/v1 and the project's public signing keys at /auth/v1/.well-known/jwks.json,
// as Supabase does.
//
//   node scripts/stack/gateway.mjs <port> <PostgREST URL>     (the JWKS, as JSON, in GATEWAY_JWKS)
import { createServer, request, Agent } from "node:http";

const [port, postgrestUrl] = process.argv.slice(2);
const jwks = process.env.GATEWAY_JWKS;
if (!port || !postgrestUrl || !jwks) {
  console.error("usage: GATEWAY_JWKS=<json> node scripts/stack/gateway.mjs <port> <PostgREST URL>");
  process.exit(2);
}

const target = new URL(postgrestUrl);
const agent = new Agent({ keepAlive: true, maxSockets: 256 });
const json = (res, status, body) => {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(body);
};

const server = createServer((req, res) => {
  if (req.url === "/auth/v1/.well-known/jwks.json") return json(res, 200, jwks);
  if (!req.url.startsWith("/rest/v1/")) return json(res, 404, JSON.stringify({ message: "not found" }));
  const upstream = request(
    { host: target.hostname, port: target.port, method: req.method, path: req.url.slice("/rest/v1".length), headers: req.headers, agent },
    (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on("error", () => {
    if (!res.headersSent) res.writeHead(502, { "content-type": "application/json" });
    res.end(JSON.stringify({ message: "gateway: PostgREST is unreachable" }));
  });
  req.pipe(upstream);
});

server.listen(Number(port), "127.0.0.1");

// Runs the local stack with the worker under `wrangler dev`, the demo page beside it, and prints
// how to use them.
import { serveDemo } from "./demo-server.mjs";
import { seed } from "./seed-ids.mjs";
import { startStack } from "./stack.mjs";

const port = Number(process.env.WORKER_PORT ?? 8787);
const stack = await startStack({ worker: "wrangler", workerPort: port, contacts: Number(process.env.SEED_CONTACTS ?? 100_000) });
const { urls, tokens, demoUser } = stack;
const workspace = seed.workspace(1);
const board = seed.board(1, 1);
const demo = await serveDemo({
  port: Number(process.env.DEMO_PORT ?? 5173),
  config: { workerUrl: urls.worker, token: tokens.demo, workspaceId: workspace, boardId: board },
});

console.log(`
contact-list-cache is running locally.

  worker     ${urls.worker}
  demo       ${demo.url}  (a board's contacts, live; as ${demoUser.email})
  supabase   ${urls.supabase} (PostgREST at /rest/v1)
  backend    ${urls.backend}
  postgrest  ${urls.postgrest}
  redis      ${urls.redis}
  postgres   ${urls.postgres}

Demo user ${demoUser.email} (${demoUser.id}), member of workspace ${workspace}.
export TOKEN=${tokens.demo}

  # Health check (configuration only), and the deep one (KV, backend, Supabase; open locally
  # without METRICS_TOKEN, which production requires)
  curl ${urls.worker}/health
  curl "${urls.worker}/health?deep=1"

  # Test contact list endpoint
  curl "${urls.worker}/api/boards/${board}/contacts?filter=open&page=1" \\
    -H "Authorization: Bearer $TOKEN" -H "X-Workspace-ID: ${workspace}"

  # Check metrics
  curl ${urls.worker}/metrics

Press Ctrl-C to stop everything.
`);

await new Promise(() => {}); // until a signal; stack.mjs stops everything on SIGINT/SIGTERM

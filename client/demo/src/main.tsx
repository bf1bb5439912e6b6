// The demo: one board's contacts with filter, sort, search and paging through useContactList,
// the cache badge of each answer, and live updates through useLiveInvalidation. Its settings
// (worker URL, a signed-in user's token, workspace and board) come from /config.json, which
// scripts/demo-server.mjs answers.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { ContactListClient, FILTERS, SORT_FIELDS, type Filter, type SortBy, type SortOrder } from "../../src/index.js";
import { ContactListProvider, useContactCounts, useContactList, useLiveInvalidation } from "../../src/react.js";

interface DemoConfig {
  workerUrl: string;
  token: string;
  workspaceId: string;
  boardId: string;
}

declare global {
  interface Window {
    /** For the end-to-end test and curious readers: the client and its live channel. */
    demo?: { client: ContactListClient; workspaceId: string };
  }
}

function useDebounced<T>(value: T, ms: number): T {
  const [debounced, setDebounced] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setDebounced(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return debounced;
}

const when = (text: string | null) => (text ? new Date(text).toLocaleString() : "—");

function Board({ boardId }: { boardId: string }) {
  const live = useLiveInvalidation();
  const { counts } = useContactCounts();
  const [filter, setFilter] = useState<Filter>("all");
  const [sortBy, setSortBy] = useState<SortBy>("created_at");
  const [sortOrder, setSortOrder] = useState<SortOrder>("desc");
  const [searchInput, setSearchInput] = useState("");
  const search = useDebounced(searchInput, 250);
  const [page, setPage] = useState(1);
  useEffect(() => setPage(1), [filter, sortBy, sortOrder, search]);
  const { data, cacheStatus, error, isLoading, isPlaceholderData, isFetching } = useContactList(boardId, { filter, sortBy, sortOrder, search, page, pageSize: 20 });
  const pagination = data?.pagination;

  return (
    <>
      <header>
        <h1>Board {boardId.slice(0, 8)}… contacts</h1>
        {cacheStatus && (
          <span className="badge" id="cache-badge" data-status={cacheStatus.status ?? ""} data-layer={cacheStatus.layer ?? ""}>
            {cacheStatus.status} · {cacheStatus.layer} · {cacheStatus.responseTime ?? "?"} ms{cacheStatus.ageSeconds !== null ? ` · age ${cacheStatus.ageSeconds}s` : ""}
          </span>
        )}
        <span className="live" id="live" data-status={live}>
          {live}
        </span>
      </header>
      <main>
        <div className="controls">
          <select id="filter" value={filter} onChange={(e) => setFilter(e.target.value as Filter)}>
            {FILTERS.map((f) => (
              <option key={f} value={f}>
                {f}
                {counts?.[f] !== undefined ? ` (${counts[f]})` : ""}
              </option>
            ))}
          </select>
          <select id="sort-by" value={sortBy} onChange={(e) => setSortBy(e.target.value as SortBy)}>
            {SORT_FIELDS.map((f) => (
              <option key={f}>{f}</option>
            ))}
          </select>
          <select id="sort-order" value={sortOrder} onChange={(e) => setSortOrder(e.target.value as SortOrder)}>
            <option>desc</option>
            <option>asc</option>
          </select>
          <input id="search" type="search" placeholder="Search name, email, phone" value={searchInput} onChange={(e) => setSearchInput(e.target.value)} />
          {isFetching && <span>loading…</span>}
        </div>
        {error && (
          <p className="error" id="error">
            {error.code ?? error.kind}: {error.message}
            {error.field ? ` (${error.field})` : ""}
          </p>
        )}
        {isLoading && <p>Loading…</p>}
        {data && (
          <table>
            <thead>
              <tr>
                <th>Name</th>
                <th>Email</th>
                <th>Phone</th>
                <th>Status</th>
                <th>Priority</th>
                <th>Last message</th>
                <th>Created</th>
              </tr>
            </thead>
            <tbody id="contacts" className={isPlaceholderData ? "placeholder" : ""} data-page={pagination?.page}>
              {data.contacts.map((c) => (
                <tr key={c.id} data-id={c.id}>
                  <td className="name">{c.name}</td>
                  <td>{c.email ?? "—"}</td>
                  <td>{c.phone ?? "—"}</td>
                  <td>{c.conversation_status}</td>
                  <td>{c.priority ?? "—"}</td>
                  <td>{when(c.last_message_time)}</td>
                  <td>{when(c.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {pagination && (
          <div className="pager">
            <button id="prev" disabled={page <= 1} onClick={() => setPage((p) => p - 1)}>
              ← Previous
            </button>
            <span id="page-info">
              Page {pagination.page} of {pagination.totalPages} · {pagination.total} contacts
            </span>
            <button id="next" disabled={page >= pagination.totalPages} onClick={() => setPage((p) => p + 1)}>
              Next →
            </button>
          </div>
        )}
      </main>
    </>
  );
}

async function start() {
  const config = (await (await fetch("./config.json")).json()) as DemoConfig;
  const client = new ContactListClient({ workerUrl: config.workerUrl, token: () => config.token, workspaceId: config.workspaceId });
  window.demo = { client, workspaceId: config.workspaceId };
  const queryClient = new QueryClient({ defaultOptions: { queries: { retry: 1 } } });
  createRoot(document.getElementById("root") as HTMLElement).render(
    <StrictMode>
      <QueryClientProvider client={queryClient}>
        <ContactListProvider client={client}>
          <Board boardId={config.boardId} />
        </ContactListProvider>
      </QueryClientProvider>
    </StrictMode>,
  );
}

void start();

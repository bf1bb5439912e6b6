// The demo: one board's contacts with filter, sort, search and paging through useContactList
// (the options factories underneath), the cache badge of each answer, and live updates through
// useLiveInvalidation. Labelled controls, status and errors announced in live regions, an empty
// state. Its settings (worker URL, a signed-in user's token, workspace and board, the live
// channel's timing) come from /config.json, which scripts/demo-server.mjs answers.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { ContactListClient, FILTERS, SORT_FIELDS, type Filter, type LiveOptions, type SortBy, type SortOrder } from "../../src/index.js";
import { ContactListProvider, useContactCounts, useContactList, useLiveInvalidation } from "../../src/react.js";

interface DemoConfig {
  workerUrl: string;
  token: string;
  workspaceId: string;
  boardId: string;
  /** The live channel's timing (tests shorten the ping interval). */
  live?: LiveOptions;
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

const LIVE_LABELS = { live: "Live", connecting: "Connecting…", offline: "Offline", paused: "Paused" } as const;

function Board({ boardId }: { boardId: string }) {
  const live = useLiveInvalidation();
  const { data: countsResult } = useContactCounts();
  const counts = countsResult?.envelope.data.counts;
  const [filter, setFilter] = useState<Filter>("all");
  const [sortBy, setSortBy] = useState<SortBy>("created_at");
  const [sortOrder, setSortOrder] = useState<SortOrder>("desc");
  const [searchInput, setSearchInput] = useState("");
  const search = useDebounced(searchInput, 250);
  const [page, setPage] = useState(1);
  useEffect(() => setPage(1), [filter, sortBy, sortOrder, search]);
  const { data: result, cacheStatus, error, isPending, isPlaceholderData, isFetching } = useContactList(boardId, { filter, sortBy, sortOrder, search, page, pageSize: 20 });
  const data = result?.envelope.data;
  const pagination = data?.pagination;
  const status = isPending && !error ? "Loading contacts…" : isFetching ? "Updating…" : pagination ? `Showing page ${pagination.page} of ${pagination.totalPages}, ${pagination.total} contacts` : "";

  return (
    <>
      <header>
        <h1>Board {boardId.slice(0, 8)}… contacts</h1>
        {cacheStatus && (
          <span className="badge" id="cache-badge" data-status={cacheStatus.status ?? ""} data-layer={cacheStatus.layer ?? ""}>
            {cacheStatus.status} · {cacheStatus.layer} · {cacheStatus.responseTime ?? "?"} ms{cacheStatus.ageSeconds !== null ? ` · age ${cacheStatus.ageSeconds}s` : ""}
          </span>
        )}
        <span className="live" id="live" data-status={live} role="status" aria-label={`Live updates: ${LIVE_LABELS[live]}`}>
          {live}
        </span>
      </header>
      <main>
        <div className="controls" role="search" aria-label="Filter and sort contacts">
          <label htmlFor="filter">Filter</label>
          <select id="filter" value={filter} onChange={(e) => setFilter(e.target.value as Filter)}>
            {FILTERS.map((f) => (
              <option key={f} value={f}>
                {f}
                {counts?.[f] !== undefined ? ` (${counts[f]})` : ""}
              </option>
            ))}
          </select>
          <label htmlFor="sort-by">Sort by</label>
          <select id="sort-by" value={sortBy} onChange={(e) => setSortBy(e.target.value as SortBy)}>
            {SORT_FIELDS.map((f) => (
              <option key={f}>{f}</option>
            ))}
          </select>
          <label htmlFor="sort-order">Order</label>
          <select id="sort-order" value={sortOrder} onChange={(e) => setSortOrder(e.target.value as SortOrder)}>
            <option>desc</option>
            <option>asc</option>
          </select>
          <label htmlFor="search">Search</label>
          <input id="search" type="search" placeholder="Name, email, phone" value={searchInput} onChange={(e) => setSearchInput(e.target.value)} />
        </div>
        <p id="status" className="status" role="status" aria-live="polite">
          {status}
        </p>
        <div role="alert" id="error-region">
          {error && (
            <p className="error" id="error">
              {error.code ?? error.kind}: {error.message}
              {error.field ? ` (${error.field})` : ""}
            </p>
          )}
        </div>
        {data && data.contacts.length === 0 && (
          <p id="empty" className="empty">
            No contacts match these filters{search ? ` and the search “${search}”` : ""}.
          </p>
        )}
        {data && data.contacts.length > 0 && (
          <table aria-describedby="status">
            <caption className="visually-hidden">Contacts of the board</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Email</th>
                <th scope="col">Phone</th>
                <th scope="col">Status</th>
                <th scope="col">Priority</th>
                <th scope="col">Last message</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody id="contacts" className={isPlaceholderData ? "placeholder" : ""} data-page={pagination?.page} aria-busy={isPlaceholderData}>
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
          <nav className="pager" aria-label="Pages">
            <button id="prev" disabled={page <= 1} onClick={() => setPage((p) => p - 1)}>
              <span aria-hidden="true">← </span>Previous
            </button>
            <span id="page-info">
              Page {pagination.page} of {pagination.totalPages} · {pagination.total} contacts
            </span>
            <button id="next" disabled={page >= pagination.totalPages} onClick={() => setPage((p) => p + 1)}>
              Next<span aria-hidden="true"> →</span>
            </button>
          </nav>
        )}
      </main>
    </>
  );
}

async function start() {
  const config = (await (await fetch("./config.json")).json()) as DemoConfig;
  const client = new ContactListClient({ workerUrl: config.workerUrl, token: () => config.token, workspaceId: config.workspaceId, ...(config.live ? { live: config.live } : {}) });
  window.demo = { client, workspaceId: config.workspaceId };
  const queryClient = new QueryClient();
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

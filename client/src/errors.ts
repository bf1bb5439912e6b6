// The one error the client throws: what kind of failure it was, and for answers of the API its
// HTTP status, `code` and `field`, so callers branch on values, never on messages. It also says
// whether asking again can help (`retryable`) and when (`retryAfterMs`), which the query options'
// retry policy reads.

/**
 * - `http`: the API answered with an error (`status`, `code`, `field` as it sent them).
 * - `network`: no answer (refused, reset, DNS, CORS).
 * - `timeout`: no answer within the client's `timeoutMs`.
 * - `aborted`: the caller's `AbortSignal` fired.
 * - `invalid_response`: an answer that is not the API's JSON.
 * - `provider`: the app's token, workspace or user provider threw (the `cause` is its error).
 */
export type ContactListErrorKind = "http" | "network" | "timeout" | "aborted" | "invalid_response" | "provider";

export class ContactListError extends Error {
  override readonly name = "ContactListError";
  readonly kind: ContactListErrorKind;
  /** The HTTP status, for `http` and `invalid_response`. */
  readonly status: number | undefined;
  /** The API's machine-readable code (`invalid_parameter`, `unauthorized`, `forbidden`, ...). */
  readonly code: string | undefined;
  /** The request field at fault, when the API named one (`pageSize`, `X-Workspace-ID`, ...). */
  readonly field: string | undefined;
  /** The worker's `X-Request-ID`, to find the request in its logs. */
  readonly requestId: string | undefined;
  /** The answer's `Retry-After`, in ms, when it sent one. */
  readonly retryAfterMs: number | undefined;

  constructor(
    kind: ContactListErrorKind,
    message: string,
    details: { status?: number; code?: string; field?: string; requestId?: string; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: details.cause });
    this.kind = kind;
    this.status = details.status;
    this.code = details.code;
    this.field = details.field;
    this.requestId = details.requestId;
    this.retryAfterMs = details.retryAfterMs;
  }

  /** Whether trying the fallback URL might help: no answer at all, or the service failing. */
  get isUnavailable(): boolean {
    return this.kind === "network" || this.kind === "timeout" || (this.kind === "http" && (this.status ?? 0) >= 500);
  }

  /**
   * Whether the same request may succeed later: no answer, a 5xx, a 408 or a 429. Any other
   * 4xx is the request's own fault (asking again answers the same), and an abort was wanted.
   */
  get retryable(): boolean {
    if (this.kind === "network" || this.kind === "timeout") return true;
    if (this.kind !== "http" && this.kind !== "invalid_response") return false;
    const status = this.status ?? 0;
    return status >= 500 || status === 408 || status === 429;
  }
}

/** Any failure as a `ContactListError`: one already is, anything else a provider's. */
export function providerError(what: string, cause: unknown): ContactListError {
  if (cause instanceof ContactListError) return cause;
  return new ContactListError("provider", `the ${what} provider failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
}

/** `Retry-After` (delay-seconds or an HTTP date) in ms from `now`; undefined when absent or bad. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

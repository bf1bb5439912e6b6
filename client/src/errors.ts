// The one error the client throws: what kind of failure it was, and for answers of the API its
// HTTP status, `code` and `field`, so callers branch on values, never on messages.

/**
 * - `http`: the API answered with an error (`status`, `code`, `field` as it sent them).
 * - `network`: no answer (refused, reset, DNS, CORS).
 * - `timeout`: no answer within the client's `timeoutMs`.
 * - `aborted`: the caller's `AbortSignal` fired.
 * - `invalid_response`: an answer that is not the API's JSON.
 */
export type ContactListErrorKind = "http" | "network" | "timeout" | "aborted" | "invalid_response";

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

  constructor(
    kind: ContactListErrorKind,
    message: string,
    details: { status?: number; code?: string; field?: string; requestId?: string; cause?: unknown } = {},
  ) {
    super(message, { cause: details.cause });
    this.kind = kind;
    this.status = details.status;
    this.code = details.code;
    this.field = details.field;
    this.requestId = details.requestId;
  }

  /** Whether trying the fallback URL might help: no answer at all, or the service failing. */
  get isUnavailable(): boolean {
    return this.kind === "network" || this.kind === "timeout" || (this.kind === "http" && (this.status ?? 0) >= 500);
  }
}

// The TypeScript envelope types against the Rust ones: fixtures/envelope.json is written by
// crates/core/tests/typescript_client.rs from the Rust types (every envelope fully populated and
// with every optional field unset). Each TS type is described by a schema whose type is derived
// from it, so the schema cannot leave out or invent a key or misstate a kind without failing
// `tsc`; the test then checks the fixture against the schemas key for key, both ways.

import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import type { Contact, ContactListResponse, CountsResponse, ErrorBody } from "../src/envelope.js";

type Scalar<T> = [T] extends [string] ? "string" : [T] extends [number] ? "number" : [T] extends [boolean] ? "boolean" : [T] extends [string | null] ? "string | null" : never;

/** What a value of type T looks like in JSON. */
type Kind<T> = [T] extends [ReadonlyArray<infer U>]
  ? { array: Schema<U> }
  : [T] extends [object]
    ? string extends keyof T
      ? { record: Scalar<T[keyof T]> }
      : Schema<T>
    : Scalar<T>;

/** Every key of T, each with its kind; an optional key's kind as `{ optional: ... }`. */
type Schema<T> = { [K in keyof T]-?: {} extends Pick<T, K> ? { optional: Kind<Exclude<T[K], undefined>> } : Kind<T[K]> };

const contact: Schema<Contact> = {
  id: "string",
  name: "string",
  email: "string | null",
  phone: "string | null",
  conversation_status: "string",
  priority: "string | null",
  last_message_time: "string | null",
  assigned_user_id: "string | null",
  board_column_id: "string | null",
  created_at: "string",
};

const contactList: Schema<ContactListResponse> = {
  success: "boolean",
  data: {
    contacts: { array: contact },
    pagination: { page: "number", pageSize: "number", total: "number", totalPages: "number", nextCursor: "string | null", prevCursor: "string | null" },
    filters: { filter: "string", search: "string", assignedTo: "string", columnId: "string" },
    sort: { sortBy: "string", sortOrder: "string" },
  },
  cached_at: "string",
  cache_ttl: "number",
};

const counts: Schema<CountsResponse> = {
  success: "boolean",
  data: { workspace_id: "string", user_id: "string", counts: { record: "number" } },
  cached_at: "string",
  cache_ttl: "number",
};

const error: Schema<ErrorBody> = {
  success: "boolean",
  error: { code: "string", message: "string", field: { optional: "string" } },
};

type Variant = "full" | "minimal";
type AnySchema = string | { array: AnySchema } | { record: string } | { optional: AnySchema } | { [key: string]: AnySchema };

/** Every way `value` (from the `variant` fixture) differs from `schema`, as `path: what`. */
function mismatches(schema: AnySchema, value: unknown, variant: Variant, path = "$"): string[] {
  if (typeof schema === "string") {
    if (schema === "string | null") {
      const expected = variant === "full" ? "string" : "null";
      const actual = value === null ? "null" : typeof value;
      return actual === expected ? [] : [`${path}: ${expected} expected in the ${variant} fixture (nullable), got ${actual}`];
    }
    return typeof value === schema ? [] : [`${path}: ${schema} expected, got ${value === null ? "null" : typeof value}`];
  }
  if ("array" in schema && Object.keys(schema).length === 1) {
    if (!Array.isArray(value) || value.length === 0) return [`${path}: a non-empty array expected`];
    return value.flatMap((item, i) => mismatches(schema.array as AnySchema, item, variant, `${path}[${i}]`));
  }
  if ("record" in schema && Object.keys(schema).length === 1) {
    if (typeof value !== "object" || value === null) return [`${path}: an object expected`];
    return Object.entries(value).flatMap(([k, v]) => mismatches(schema.record as AnySchema, v, variant, `${path}.${k}`));
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return [`${path}: an object expected`];
  const object = value as Record<string, unknown>;
  const fields = schema as Record<string, AnySchema>;
  const problems = Object.keys(object)
    .filter((key) => !(key in fields))
    .map((key) => `${path}.${key}: in the Rust type, missing from the TypeScript type`);
  for (const [key, kind] of Object.entries(fields)) {
    const optional = typeof kind === "object" && "optional" in kind && Object.keys(kind).length === 1;
    if (!(key in object)) {
      if (!(optional && variant === "minimal")) problems.push(`${path}.${key}: in the TypeScript type, missing from the Rust type's ${variant} JSON`);
      continue;
    }
    if (optional && variant === "minimal") problems.push(`${path}.${key}: optional in TypeScript, but Rust writes it when unset`);
    problems.push(...mismatches(optional ? (kind as { optional: AnySchema }).optional : kind, object[key], variant, `${path}.${key}`));
  }
  return problems;
}

const fixture = JSON.parse(readFileSync(new URL("../fixtures/envelope.json", import.meta.url), "utf8")) as Record<Variant, Record<string, unknown>>;
const schemas = { contactList, counts, error } as unknown as Record<string, AnySchema>;

describe("the TypeScript envelope types match the Rust envelopes", () => {
  for (const variant of ["full", "minimal"] as const) {
    test(`the ${variant} fixture has exactly the envelopes the client types`, () => {
      expect(Object.keys(fixture[variant]).sort()).toEqual(Object.keys(schemas).sort());
    });
    for (const name of Object.keys(schemas)) {
      test(`${name} (${variant}) has the same keys and kinds`, () => {
        expect(mismatches(schemas[name] as AnySchema, fixture[variant][name], variant)).toEqual([]);
      });
    }
  }

  test("the check itself finds an added, a missing and a retyped field", () => {
    const list = structuredClone(fixture.full.contactList) as ContactListResponse & Record<string, unknown>;
    list.extra = 1;
    delete (list.data.pagination as Partial<ContactListResponse["data"]["pagination"]>).total;
    (list.data.contacts[0] as unknown as Record<string, unknown>).name = 3;
    expect(mismatches(contactList as unknown as AnySchema, list, "full").sort()).toEqual([
      "$.data.contacts[0].name: string expected, got number",
      "$.data.pagination.total: in the TypeScript type, missing from the Rust type's full JSON",
      "$.extra: in the Rust type, missing from the TypeScript type",
    ]);
  });
});

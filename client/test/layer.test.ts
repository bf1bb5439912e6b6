// The client's X-Cache-Layer and X-Cache-Status values against the worker's Rust enums
// (crates/core/src/layer.rs): a layer added or renamed there fails here, not in a user's app.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { CACHE_LAYERS, CACHE_STATUSES } from "../src/index.js";

const source = readFileSync(new URL("../../crates/core/src/layer.rs", import.meta.url), "utf8");

/** The strings `as_str` answers for `enum`, in declaration order of its match arms. */
function asStrValues(name: string): string[] {
  const impl = source.match(new RegExp(`impl ${name} \\{[\\s\\S]*?fn as_str[\\s\\S]*?match self \\{([\\s\\S]*?)\\n\\s*\\}`));
  if (!impl?.[1]) throw new Error(`no as_str of ${name} in layer.rs`);
  return [...impl[1].matchAll(/Self::\w+\s*=>\s*"([^"]+)"/g)].map((m) => m[1] as string);
}

/** The variants of `enum name`. */
function variants(name: string): string[] {
  const body = source.match(new RegExp(`pub enum ${name} \\{([\\s\\S]*?)\\}`))?.[1] ?? "";
  return [...body.matchAll(/^\s*(\w+),/gm)].map((m) => m[1] as string);
}

describe("cache values follow the Rust enums", () => {
  test("CACHE_LAYERS are CacheLayer::as_str of every variant", () => {
    expect(asStrValues("CacheLayer")).toHaveLength(variants("CacheLayer").length);
    expect([...CACHE_LAYERS].sort()).toEqual(asStrValues("CacheLayer").sort());
    expect(CACHE_LAYERS).toContain("L0");
  });

  test("CACHE_STATUSES are CacheStatus::as_str of every variant", () => {
    expect(asStrValues("CacheStatus")).toHaveLength(variants("CacheStatus").length);
    expect([...CACHE_STATUSES].sort()).toEqual(asStrValues("CacheStatus").sort());
  });
});

// Checks one answer of the worker against docs/openapi.yaml: the status is one the operation
// documents, a JSON body matches that status's schema, and the documented headers are there (when
// required) and match theirs. Used by tests/openapi/preload.mjs for every answer the e2e suite
// receives from a worker, and by tests/openapi/validate.test.mjs on hand-made answers.
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

export const DOCUMENT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "docs", "openapi.yaml");

const ID = "openapi";
const METHODS = ["get", "head", "post", "put", "patch", "delete", "options"];
/** The catch-all path: OPTIONS on any path, and the 404/405 of any route not documented. */
const ANY_PATH = "/{anyPath}";

const pointer = (segments) => "#/" + segments.map((s) => encodeURIComponent(String(s).replaceAll("~", "~0").replaceAll("/", "~1"))).join("/");

/** The document, loaded and compiled once per process. */
export class OpenApi {
  constructor(file = DOCUMENT) {
    this.doc = parse(readFileSync(file, "utf8"));
    this.ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(this.ajv);
    this.ajv.addSchema(this.doc, ID);
    this.validators = new Map();
    // Documented paths as patterns, the fixed ones first (so `/api/cache/stats` is not a template's).
    this.paths = Object.keys(this.doc.paths)
      .filter((p) => p !== ANY_PATH)
      .map((template) => ({
        template,
        pattern: new RegExp("^" + template.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{[^}]+\}/g, "[^/]+") + "$"),
        fixed: !template.includes("{"),
      }))
      .sort((a, b) => Number(b.fixed) - Number(a.fixed));
  }

  /** Resolves a `$ref` inside the document: the object and its JSON pointer segments. */
  resolve(node, at) {
    while (node && typeof node.$ref === "string") {
      const segments = node.$ref.replace(/^#\//, "").split("/").map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
      node = segments.reduce((n, s) => n?.[s], this.doc);
      at = segments;
    }
    return [node, at];
  }

  validator(segments) {
    const ref = ID + pointer(segments);
    if (!this.validators.has(ref)) this.validators.set(ref, this.ajv.compile({ $ref: ref }));
    return this.validators.get(ref);
  }

  /** Whether `path` is one of the worker's documented routes (the catch-all aside). */
  documents(path) {
    return this.paths.some(({ pattern }) => pattern.test(path));
  }

  /**
   * The problems of one answer, as sentences (empty when it conforms). `headers` is a `Headers`;
   * `body` the body as text (null when none was read, as for a 101 or a HEAD).
   */
  check({ method, path, status, headers, body }) {
    const problems = [];
    const verb = method.toLowerCase();
    const route = this.paths.find(({ pattern }) => pattern.test(path));
    let template = route?.template ?? ANY_PATH;
    let verbKey = verb;
    if (!this.doc.paths[template][verbKey]) {
      // A method the route does not document (or an undocumented route): the catch-all's
      // answers, which are the 404 and 405 errors (and any path's OPTIONS).
      template = ANY_PATH;
      verbKey = verb === "options" ? "options" : "get";
    }
    const operation = this.doc.paths[template][verbKey];
    const at = ["paths", template, verbKey];
    const where = `${method} ${path} → ${status}`;
    const declared = operation.responses[String(status)];
    if (!declared) {
      return [`${where}: status ${status} is not documented for ${method.toUpperCase()} ${template} (documented: ${Object.keys(operation.responses).join(", ")})`];
    }
    const [response, responseAt] = this.resolve(declared, [...at, "responses", String(status)]);
    for (const [name, header] of Object.entries(response.headers ?? {})) {
      const [spec, specAt] = this.resolve(header, [...responseAt, "headers", name]);
      const value = headers.get(name);
      if (value === null) {
        if (spec.required) problems.push(`${where}: header ${name} is required but missing`);
        continue;
      }
      if (spec.schema) {
        const validate = this.validator([...specAt, "schema"]);
        if (!validate(value)) problems.push(`${where}: header ${name}: ${JSON.stringify(value)} ${this.ajv.errorsText(validate.errors, { dataVar: name })}`);
      }
    }
    const content = response.content ?? {};
    const type = (headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (body === null || verb === "head" || status === 101 || status === 204) return problems;
    if (Object.keys(content).length === 0) {
      if (body.length > 0) problems.push(`${where}: a body (${type || "no content type"}) where none is documented`);
      return problems;
    }
    if (!(type in content)) {
      problems.push(`${where}: content type ${JSON.stringify(type)} is not documented (documented: ${Object.keys(content).join(", ")})`);
      return problems;
    }
    if (type === "application/json") {
      let json;
      try {
        json = JSON.parse(body);
      } catch (err) {
        problems.push(`${where}: the body is not JSON (${err.message}): ${body.slice(0, 200)}`);
        return problems;
      }
      const validate = this.validator([...responseAt, "content", type, "schema"]);
      if (!validate(json)) {
        const errors = validate.errors.slice(0, 8).map((e) => `${e.instancePath || "/"} ${e.message}${e.params && Object.keys(e.params).length ? " " + JSON.stringify(e.params) : ""}`);
        problems.push(`${where}: body does not match the schema: ${errors.join("; ")}; body: ${body.slice(0, 300)}`);
      }
    }
    return problems;
  }
}

export { METHODS };

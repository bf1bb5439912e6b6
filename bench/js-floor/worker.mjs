// The floor in JavaScript: bench/floor/src/lib.rs's constant JSON (the same 102-byte body and
// Content-Type), so the Rust floor's cost over workerd alone (the wasm boundary, workers-rs) can
// be read as a ratio. Plain ES module, no build step.

/** An empty page in the list endpoint's envelope: the same shape, none of the work. */
const BODY = '{"success":true,"data":{"contacts":[],"pagination":{"page":1,"pageSize":50,"total":0,"totalPages":0}}}';

export default {
  fetch() {
    return new Response(BODY, { headers: { "content-type": "application/json" } });
  },
};

// Runtime check of the installed package in Node: imports, and the errors
// a Node user meets first (no url, no transport) are clear.
import assert from "node:assert/strict";
import Default, { HeraldClient, HeraldError } from "@heraldrt/herald";
import { createRequire } from "node:module";

const pkg = createRequire(import.meta.url)("@heraldrt/herald/package.json");

assert.equal(Default, HeraldClient);
assert.throws(() => new HeraldClient({ token: "t" }), (e) => e instanceof HeraldError && e.code === "missing_url");
assert.throws(() => new HeraldClient({ url: "http://127.0.0.1:1", token: "t", WebSocket: null }),
  (e) => e.code === "no_transport" && e.message.includes('"WebSocket" option'));
const c = new HeraldClient({ url: "http://127.0.0.1:1", token: "t", WebSocket: class {} });
assert.equal(c.state, "idle");
console.log("ok " + pkg.name + "@" + pkg.version);

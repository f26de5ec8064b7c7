// Unit tests for edge/static/herald.js with fake WebSocket and EventSource
// classes: node --test web/   (Node 18+; no npm packages).
import { test } from "node:test";
import assert from "node:assert/strict";
import { HeraldClient } from "../edge/static/herald.js";

const BASE = "http://herald.test";

// A tiny world of fake transports that records what the client does.
function world() {
  const log = [];
  const sockets = [];
  const streams = [];
  class FakeWS {
    constructor(url) {
      this.url = new URL(url);
      this.readyState = 0;
      this.sent = [];
      sockets.push(this);
      log.push("ws-open " + (this.url.searchParams.get("since") || "-"));
    }
    send(s) { this.sent.push(JSON.parse(s)); }
    close() { if (this.readyState !== 3) log.push("ws-close"); this.readyState = 3; }
    msg(obj) { this.readyState = 1; this.onmessage && this.onmessage({ data: JSON.stringify(obj) }); }
    drop(code = 1006) { this.readyState = 3; this.onclose && this.onclose({ code }); }
  }
  class FakeES {
    constructor(url, opts) {
      this.url = new URL(url);
      this.opts = opts;
      this.closed = false;
      streams.push(this);
      log.push("sse-open " + (this.url.searchParams.get("since") || "-"));
    }
    close() { if (!this.closed) log.push("sse-close"); this.closed = true; }
    emit(obj, id = "") { this.onmessage && this.onmessage({ data: JSON.stringify(obj), lastEventId: id }); }
    fail() { this.onerror && this.onerror(new Event("error")); }
  }
  return { log, sockets, streams, FakeWS, FakeES };
}

const until = async (pred, ms = 2000) => {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("timed out waiting for " + pred);
    await new Promise((r) => setTimeout(r, 5));
  }
};

function client(w, extra = {}) {
  let n = 0;
  const c = new HeraldClient({
    url: BASE, WebSocket: w.FakeWS, EventSource: w.FakeES,
    getToken: async () => "tok" + ++n,
    minDelay: 10, maxDelay: 40, probeInterval: 30, wsOpenTimeout: 200,
    ...extra,
  });
  return c;
}

const hello = { type: "connection_established", message: "WebSocket connected successfully", user_id: "42", cursor: "c0" };
const env = (cursor, data) => ({ cursor, channel: "user:42", data });

test("WebSocket envelope: dispatch by type and *, cursor kept, resume with since", async () => {
  const w = world();
  const c = client(w);
  const byType = [], all = [], life = [];
  c.on("oracle_upload_progress", (d, meta) => byType.push([d.step_number, meta.cursor, meta.channel]));
  c.on("*", (d) => all.push(d.type));
  c.on("connected", (e) => life.push("connected:" + e.transport));
  c.on("disconnected", (e) => life.push("disconnected:" + e.reason));
  c.connect();
  await until(() => w.sockets.length === 1);
  const ws = w.sockets[0];
  assert.equal(ws.url.pathname, "/ws/notifications/");
  assert.equal(ws.url.searchParams.get("format"), "envelope");
  assert.equal(ws.url.searchParams.get("token"), "tok1");
  assert.equal(ws.url.searchParams.get("since"), null);
  ws.msg(hello);
  ws.msg(env("c1", { type: "oracle_upload_progress", step_number: 1 }));
  ws.msg(env("c2", { type: "oracle_upload_progress", step_number: 2 }));
  assert.equal(c.transport, "websocket");
  assert.equal(c.cursor, "c2");
  assert.deepEqual(byType, [[1, "c1", "user:42"], [2, "c2", "user:42"]]);
  assert.deepEqual(all, ["connection_established", "oracle_upload_progress", "oracle_upload_progress"]);

  ws.drop(1006); // after messages: reconnect on WebSocket from the cursor
  await until(() => w.sockets.length === 2);
  assert.equal(w.sockets[1].url.searchParams.get("since"), "c2");
  assert.equal(w.sockets[1].url.searchParams.get("token"), "tok2", "fresh token per connect");
  assert.deepEqual(life, ["connected:websocket", "disconnected:connection_lost"]);
  c.disconnect();
});

test("falls back to SSE when WebSocket closes before any message, probes, moves back without overlap", async () => {
  const w = world();
  const c = client(w);
  const transports = [];
  const got = [];
  c.on("transport", (t) => transports.push(t));
  c.on("*", (d) => got.push(d.n ?? d.type));
  c.connect();
  await until(() => w.sockets.length === 1);
  w.sockets[0].drop(1006); // refused by a proxy
  await until(() => w.streams.length === 1);
  const es = w.streams[0];
  assert.equal(es.url.pathname, "/sse/notifications/");
  es.emit({ type: "connection_established" }, "c0");
  es.emit({ n: 1 }, "c1");
  es.emit({ n: 2 }, "c2");
  assert.equal(c.transport, "sse");
  // The probe: a WebSocket without since; its first message proves it works.
  await until(() => w.sockets.length === 2);
  const probe = w.sockets[1];
  assert.equal(probe.url.searchParams.get("since"), null);
  probe.msg(hello);
  await until(() => w.sockets.length === 3);
  assert.ok(probe.readyState === 3, "probe closed");
  assert.ok(es.closed, "SSE closed before the switch");
  const ws = w.sockets[2];
  assert.equal(ws.url.searchParams.get("since"), "c2");
  // SSE was closed before the new WebSocket opened.
  assert.ok(w.log.lastIndexOf("sse-close") < w.log.lastIndexOf("ws-open c2"), w.log.join(", "));
  es.emit({ n: 99 }, "c99"); // a late event from the closed stream is ignored
  ws.msg(hello);
  ws.msg(env("c3", { n: 3 }));
  assert.deepEqual(got.filter((x) => typeof x === "number"), [1, 2, 3]);
  assert.deepEqual(transports, ["sse", "websocket"]);
  c.disconnect();
});

test("WebSocket that never delivers falls back after wsOpenTimeout", async () => {
  const w = world();
  const c = client(w, { wsOpenTimeout: 30 });
  c.connect();
  await until(() => w.streams.length === 1);
  assert.equal(w.sockets[0].readyState, 3);
  c.disconnect();
});

test("transports: ['sse'] forces SSE and never probes", async () => {
  const w = world();
  const c = client(w, { transports: ["sse"], probeInterval: 5 });
  c.connect();
  await until(() => w.streams.length === 1);
  w.streams[0].emit({ type: "connection_established" }, "c0");
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(w.sockets.length, 0);
  c.disconnect();
});

test("disconnect reconnect:false stops; retry_ms is obeyed", async () => {
  const w = world();
  const c = client(w);
  const life = [];
  c.on("disconnected", (e) => life.push([e.reason, e.reconnect]));
  c.connect();
  await until(() => w.sockets.length === 1);
  let ws = w.sockets[0];
  ws.msg(hello);
  ws.msg({ type: "disconnect", reason: "shutdown", reconnect: true, retry_ms: 120, cursor: "c5" });
  const t0 = Date.now();
  ws.drop(1012);
  await until(() => w.sockets.length === 2);
  assert.ok(Date.now() - t0 >= 110, "waited retry_ms");
  ws = w.sockets[1];
  assert.equal(ws.url.searchParams.get("since"), "c5");
  ws.msg(hello);
  ws.msg({ type: "disconnect", reason: "logout", reconnect: false });
  ws.drop(4403);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(w.sockets.length, 2, "no reconnect");
  assert.equal(w.streams.length, 0, "no fallback either");
  assert.equal(c.state, "closed");
  assert.deepEqual(life, [["shutdown", true], ["logout", false]]);
});

test("SSE token_expiring reconnects with a fresh token from the cursor", async () => {
  const w = world();
  const c = client(w, { transports: ["sse"] });
  c.connect();
  await until(() => w.streams.length === 1);
  w.streams[0].emit({ type: "connection_established" }, "c0");
  w.streams[0].emit({ n: 1 }, "c1");
  w.streams[0].emit({ type: "token_expiring", expires_at: 1 }, "c1");
  await until(() => w.streams.length === 2);
  assert.ok(w.streams[0].closed);
  assert.equal(w.streams[1].url.searchParams.get("token"), "tok2");
  assert.equal(w.streams[1].url.searchParams.get("since"), "c1");
  c.disconnect();
});

test("WebSocket refresh: token_expiring and the exp timer send {type:refresh}", async () => {
  const w = world();
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  let n = 0;
  const c = client(w, {
    refreshLead: 3600 * 1000, // exp is an hour away: refresh at once (after the 1 s floor)
    getToken: async () => `${b64({ alg: "HS256" })}.${b64({ exp: Math.floor(Date.now() / 1000) + 3600, n: ++n })}.sig`,
  });
  c.connect();
  await until(() => w.sockets.length === 1);
  const ws = w.sockets[0];
  ws.msg(hello);
  ws.msg({ type: "token_expiring", expires_at: 123, cursor: "c0" });
  await until(() => ws.sent.length === 1);
  assert.equal(ws.sent[0].type, "refresh");
  assert.match(ws.sent[0].token, /\./);
  await until(() => ws.sent.length === 2, 3000); // the timer from the token's exp
  assert.notEqual(ws.sent[1].token, ws.sent[0].token);
  c.disconnect();
});

test("backoff grows with full jitter up to maxDelay while Herald is unreachable", async () => {
  const w = world();
  const real = Math.random;
  Math.random = () => 0.999;
  try {
    const c = client(w, { transports: ["sse"], minDelay: 20, maxDelay: 80 });
    const times = [];
    c.connect();
    for (let i = 1; i <= 5; i++) {
      await until(() => w.streams.length === i);
      times.push(Date.now());
      w.streams[i - 1].fail();
    }
    c.disconnect();
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    // ≈ 20, 40, 80, 80 (ms)
    assert.ok(gaps[0] < 60 && gaps[1] >= 35 && gaps[2] >= 70 && gaps[3] < 150, "gaps " + gaps);
  } finally {
    Math.random = real;
  }
});

test("stream_reset reaches its handler; a failing handler does not break the client", async () => {
  const w = world();
  const c = client(w);
  const resets = [];
  c.on("*", () => { throw new Error("app bug"); });
  c.on("stream_reset", (d) => resets.push(d.reason));
  const errors = [];
  const saved = globalThis.reportError;
  globalThis.reportError = (e) => errors.push(e.message);
  c.connect();
  await until(() => w.sockets.length === 1);
  w.sockets[0].msg(hello);
  w.sockets[0].msg({ type: "stream_reset", reason: "epoch_changed", channel: "user:42", cursor: "c9" });
  assert.deepEqual(resets, ["epoch_changed"]);
  assert.equal(c.cursor, "c9");
  globalThis.reportError = saved;
  assert.deepEqual(errors, ["app bug", "app bug"]);
  c.disconnect();
});

test("setTypes reconnects from the cursor with ?types=; history() reads /api/me/history", async () => {
  const w = world();
  const c = client(w);
  c.connect();
  await until(() => w.sockets.length === 1);
  w.sockets[0].msg(hello);
  w.sockets[0].msg(env("c5", { type: "oracle_upload_started" }));
  c.setTypes(["oracle_upload_*", "-oracle_upload_progress"]);
  await until(() => w.sockets.length === 2);
  const u = w.sockets[1].url;
  assert.equal(u.searchParams.get("types"), "oracle_upload_*,-oracle_upload_progress");
  assert.equal(u.searchParams.get("since"), "c5");
  assert.equal(w.sockets[0].readyState, 3, "old socket closed first");

  const seen = [];
  globalThis.fetch = async (url) => {
    seen.push(new URL(url));
    return { ok: true, json: async () => ({ messages: [], next: "" }) };
  };
  const page = await c.history({ limit: 10, before: "n1" });
  assert.deepEqual(page, { messages: [], next: "" });
  assert.equal(seen[0].pathname, "/api/me/history");
  assert.equal(seen[0].searchParams.get("limit"), "10");
  assert.equal(seen[0].searchParams.get("before"), "n1");
  assert.equal(seen[0].searchParams.get("types"), null);
  assert.ok(seen[0].searchParams.get("token"));
  c.disconnect();
});

// Unit tests for herald.js with fake WebSocket and EventSource classes:
// npm test, or node --test clients/js/test/herald.test.mjs (Node 18+; no npm packages).
import { test } from "node:test";
import assert from "node:assert/strict";
import { HeraldClient } from "../herald.js";

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
    url: BASE, WebSocket: w.FakeWS, EventSource: w.FakeES, share: false,
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
  c.lifecycle.on("connected", (e) => life.push("connected:" + e.transport));
  c.lifecycle.on("disconnected", (e) => life.push("disconnected:" + e.reason));
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
  c.lifecycle.on("transport", (t) => transports.push(t));
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
  c.lifecycle.on("disconnected", (e) => life.push([e.reason, e.reconnect]));
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
    const c = client(w, { transports: ["sse"], minDelay: 100, maxDelay: 400 });
    const times = [];
    c.connect();
    for (let i = 1; i <= 5; i++) {
      await until(() => w.streams.length === i);
      times.push(Date.now());
      w.streams[i - 1].fail();
    }
    c.disconnect();
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    // ≈ 100, 200, 400, 400 (ms). Timers never fire early, so the lower
    // bounds are exact; a loaded machine only adds, so the cap is checked
    // against the next doubling (800 ms) rather than a tight window.
    assert.ok(gaps[0] >= 95 && gaps[1] >= 190 && gaps[2] >= 380 && gaps[3] >= 380 && gaps[3] < 750, "gaps " + gaps);
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

test("lifecycle events have their own namespace: a message typed 'connected' is only a message", async () => {
  const w = world();
  const c = client(w);
  const msgs = [], life = [];
  c.on("connected", (d) => msgs.push(d.type));
  c.lifecycle.on("connected", (e) => life.push(e.transport));
  c.lifecycle.on("state", (s) => life.push(s));
  c.connect();
  await until(() => w.sockets.length === 1);
  w.sockets[0].msg(hello);
  w.sockets[0].msg(env("c1", { type: "connected" }));
  assert.deepEqual(msgs, ["connected"]);
  assert.deepEqual(life, ["connecting", "open", "websocket"]);
  assert.throws(() => c.lifecycle.on("state", "nope"), /must be a function/);
  c.disconnect();
  assert.equal(life.at(-1), "closed");
});

test("construction errors: missing url, no transport (names the option to pass)", () => {
  assert.equal(globalThis.location, undefined, "this test runs without a page");
  assert.throws(() => new HeraldClient({ token: "t", WebSocket: class {} }),
    (e) => e.name === "HeraldError" && e.code === "missing_url" && /"url"/.test(e.message));
  assert.throws(() => new HeraldClient({ url: "not a url", WebSocket: class {} }), (e) => e.code === "bad_url");
  assert.throws(() => new HeraldClient({ url: BASE, WebSocket: null, EventSource: null }),
    (e) => e.code === "no_transport" && /"WebSocket" option/.test(e.message) && /"ws" package/.test(e.message));
  assert.throws(() => new HeraldClient({ url: BASE, WebSocket: null, EventSource: class {}, transports: ["websocket"] }),
    (e) => e.code === "no_transport");
});

test("setTypes filters locally too (each tab keeps its own filter)", async () => {
  const w = world();
  const c = client(w, { types: ["oracle_upload_*", "-oracle_upload_progress"] });
  const got = [];
  c.on("*", (d) => got.push(d.type ?? "untyped"));
  c.connect();
  await until(() => w.sockets.length === 1);
  assert.equal(w.sockets[0].url.searchParams.get("types"), "oracle_upload_*,-oracle_upload_progress");
  w.sockets[0].msg(hello);
  for (const [i, t] of ["oracle_upload_started", "oracle_upload_progress", "tick", undefined, "oracle_upload_completed"].entries()) {
    w.sockets[0].msg(env("c" + i, t ? { type: t } : { n: i }));
  }
  assert.deepEqual(got, ["connection_established", "oracle_upload_started", "oracle_upload_completed"]);
  c.disconnect();
});

// ---- sharing between "tabs": BroadcastChannel is Node's own; Web Locks is
// a small in-process stand-in with the same semantics (one holder per name,
// waiters in order, release when the callback's promise settles).

function fakeLocks() {
  const held = new Map(); // name -> queue of waiters
  const grant = (name) => {
    const q = held.get(name);
    if (!q || q.busy || !q.length) return;
    const w = q.shift();
    q.busy = true;
    Promise.resolve(w.cb({ name })).finally(() => { q.busy = false; grant(name); }).then(w.resolve, w.reject);
  };
  return {
    request(name, opts, cb) {
      return new Promise((resolve, reject) => {
        if (!held.has(name)) held.set(name, Object.assign([], { busy: false }));
        const w = { cb, resolve, reject };
        held.get(name).push(w);
        opts.signal?.addEventListener("abort", () => {
          const q = held.get(name), i = q.indexOf(w);
          if (i >= 0) { q.splice(i, 1); reject(new Error("AbortError")); }
        });
        setTimeout(() => grant(name), 0);
      });
    },
  };
}

// cur encodes a real one-channel cursor (channel hash 7, epoch 1, offset n).
const cur = (n) => Buffer.from([1, 0, 0, 0, 7, 1, n]).toString("base64url");

test("tabs share one connection; leader failover resumes from the oldest position: 0 lost, 0 duplicated", async () => {
  let cleanup = () => {};
  const hadNav = Object.getOwnPropertyDescriptor(globalThis, "navigator");
  Object.defineProperty(globalThis, "navigator", { value: { locks: fakeLocks() }, configurable: true, writable: true });
  try {
    const w = world();
    const tabs = [0, 1, 2].map(() => client(w, { share: true, shareName: "t" + Math.random() }));
    cleanup = () => tabs.forEach((t) => t.disconnect());
    // the three must share: one name
    const name = "same";
    for (const t of tabs) t.opts.shareName = name;
    const got = tabs.map(() => []);
    const roles = tabs.map(() => []);
    tabs.forEach((t, i) => {
      t.on("tick", (d) => got[i].push(d.n));
      t.lifecycle.on("role", (r) => roles[i].push(r));
    });
    for (const t of tabs) t.connect();
    await until(() => w.sockets.length === 1);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(w.sockets.length, 1, "one connection for three tabs");
    const leader = tabs.findIndex((t) => t.role === "leader");
    assert.equal(tabs.filter((t) => t.role === "follower").length, 2);
    let ws = w.sockets[0];
    ws.msg(hello);
    for (let n = 1; n <= 4; n++) ws.msg(env(cur(n), { type: "tick", n }));
    await until(() => got.every((g) => g.length === 4));
    await until(() => tabs.every((t) => t.transport === "websocket"));

    // The leader "crashes": no goodbye, its lock is released by the browser.
    const old = tabs[leader];
    old._stopped = true;
    old._teardown();
    old._bc.close();
    old._release();
    await until(() => w.sockets.length === 2, 2000);
    ws = w.sockets[1];
    assert.equal(ws.url.searchParams.get("since"), cur(4), "resumes from the last position the tabs saw");
    ws.msg(hello);
    // Herald replays from the cursor; a replay of 3..4 (as when a tab was
    // behind) is dropped by the tabs that already have them.
    for (let n = 3; n <= 7; n++) ws.msg(env(cur(n), { type: "tick", n }));
    const rest = [0, 1, 2].filter((i) => i !== leader);
    await until(() => rest.every((i) => got[i].length === 7));
    await new Promise((r) => setTimeout(r, 50));
    for (const i of rest) assert.deepEqual(got[i], [1, 2, 3, 4, 5, 6, 7], "tab " + i);
    assert.equal(rest.filter((i) => tabs[i].role === "leader").length, 1);
    for (const i of rest) tabs[i].disconnect();
  } finally {
    cleanup();
    if (hadNav) Object.defineProperty(globalThis, "navigator", hadNav);
    else delete globalThis.navigator;
  }
});

test("shared: a follower's setTypes reaches the leader; each tab filters for itself; disconnect() hands over", async () => {
  let cleanup = () => {};
  const hadNav = Object.getOwnPropertyDescriptor(globalThis, "navigator");
  Object.defineProperty(globalThis, "navigator", { value: { locks: fakeLocks() }, configurable: true, writable: true });
  try {
    const w = world();
    const tabs = [0, 1].map(() => client(w, { share: true, shareName: "types" }));
    cleanup = () => tabs.forEach((t) => t.disconnect());
    const got = tabs.map(() => []);
    tabs.forEach((t, i) => t.on("*", (d) => { if (!d.type?.startsWith("connection")) got[i].push(d.type); }));
    tabs[0].connect();
    await until(() => tabs[0].role === "leader" && w.sockets.length === 1);
    tabs[1].connect();
    await until(() => tabs[1].role === "follower");
    w.sockets[0].msg(hello);
    await until(() => tabs[1].state === "open");

    // The connection takes a filter only when both tabs agree on it.
    tabs[1].setTypes(["a_*"]);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(w.sockets.length, 1, "the leader still wants everything: no filter, no reconnect");
    tabs[0].setTypes(["a_*"]);
    await until(() => w.sockets.length === 2);
    assert.equal(w.sockets[1].url.searchParams.get("types"), "a_*");
    assert.equal(w.sockets[1].url.searchParams.get("since"), "c0", "reconnects from the cursor");
    // The follower wants another one: the connection drops its filter, each tab filters.
    tabs[1].setTypes(["b_*"]);
    await until(() => w.sockets.length === 3);
    assert.equal(w.sockets[2].url.searchParams.get("types"), null);
    const ws = w.sockets[2];
    ws.msg(hello);
    ws.msg(env(cur(1), { type: "a_1" }));
    ws.msg(env(cur(2), { type: "b_1" }));
    await until(() => got[1].length === 1);
    assert.deepEqual(got, [["a_1"], ["b_1"]]);

    // The leader leaves politely: the follower takes over from the cursor.
    tabs[0].disconnect();
    await until(() => tabs[1].role === "leader" && w.sockets.length === 4);
    assert.equal(w.sockets[3].url.searchParams.get("since"), cur(2));
    assert.equal(w.sockets[3].url.searchParams.get("types"), "b_*", "alone now: its own filter");
    tabs[1].disconnect();
  } finally {
    cleanup();
    if (hadNav) Object.defineProperty(globalThis, "navigator", hadNav);
    else delete globalThis.navigator;
  }
});

test("without Web Locks (here: Node) share: true falls back to a connection of its own", async () => {
  assert.ok(!globalThis.navigator?.locks, "this runtime has no Web Locks");
  const w = world();
  const c = client(w, { share: true });
  c.connect();
  await until(() => w.sockets.length === 1);
  assert.equal(c.role, "solo");
  c.disconnect();
});

// herald.js: the browser client for Herald. A dependency-free ES module, no
// build step:
//
//   import { HeraldClient } from "/herald.js";
//   const client = new HeraldClient({ getToken: () => myApi.heraldToken() });
//   client.on("oracle_upload_progress", (data) => bar(data.step_number));
//   client.connect();
//
// WebSocket first (envelope format, so every message carries its cursor),
// Server-Sent Events when WebSocket does not get through; while on SSE it
// probes WebSocket in the background and moves back when it works. Every
// (re)connect and transport switch resumes from the last cursor seen
// (?since=), so the app sees each message once, in order. See docs/client.md.

const WS_PATH = "/ws/notifications/";
const SSE_PATH = "/sse/notifications/";
const MAX_TIMER = 0x7fffffff; // setTimeout's largest delay

const DEFAULTS = {
  url: "", // Herald's base URL ("https://rt.example.com"); "" = this page's origin
  getToken: null, // () => token | Promise<token>; called before every connect and refresh
  token: null, // a fixed token instead of getToken
  transports: ["websocket", "sse"], // preference order; ["sse"] forces SSE
  wsOpenTimeout: 5000, // WebSocket must deliver its first message within this (ms)
  probeInterval: 30000, // while on SSE, try WebSocket again this often (ms)
  minDelay: 500, // backoff: first retry waits up to this long (ms) ...
  maxDelay: 15000, // ... doubling per failed attempt up to this (full jitter)
  refreshLead: 60000, // WebSocket: refresh the token this long before it expires (ms)
  withCredentials: false, // SSE: send cookies cross-origin (cookie auth)
  cursor: null, // resume from this cursor on the first connect
  notify: null, // { types: [...], title, body, icon, onlyWhenHidden, onClick(data, event) } for OS notifications
  WebSocket: globalThis.WebSocket, // injectable for tests and polyfills
  EventSource: globalThis.EventSource,
};

export class HeraldClient {
  constructor(options = {}) {
    this.opts = { ...DEFAULTS, ...options };
    this.cursor = this.opts.cursor || null; // last position seen (opaque)
    this.transport = null; // "websocket" | "sse" while connected, else null
    this.state = "idle"; // "idle" | "connecting" | "open" | "closed"
    this._handlers = new Map();
    this._gen = 0; // bumps on every new connection; stale callbacks check it
    this._attempt = 0; // failed attempts since the last good connection
    this._wsBroken = false; // WebSocket failed: start with SSE and probe
    this._stopped = true;
    this._timers = {};
    this._ws = this._es = null;
    this._final = null; // the server's disconnect event, if any
    this._online = () => this._retryNow();
  }

  // on(type, fn): fn(data, meta) for messages whose "type" is type; "*" for
  // every message and control event; "connected", "disconnected",
  // "transport" and "stream_reset" for the connection's life. Returns a
  // function that removes fn.
  on(type, fn) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    const set = this._handlers.get(type);
    if (set) set.delete(fn);
  }

  connect() {
    if (!this._stopped) return this;
    this._stopped = false;
    if (globalThis.addEventListener) globalThis.addEventListener("online", this._online);
    this._open(this._first());
    return this;
  }

  disconnect() {
    const was = this.transport;
    this._stopped = true;
    this._teardown();
    if (globalThis.removeEventListener) globalThis.removeEventListener("online", this._online);
    this.state = "closed";
    this._setTransport(null);
    if (was) this._emit("disconnected", { transport: was, reason: "client", reconnect: false });
  }

  // Ask for permission to show OS notifications (call from a click handler).
  static requestNotificationPermission() {
    if (typeof Notification === "undefined") return Promise.resolve("denied");
    return Notification.requestPermission();
  }

  // ---- internals ----

  _emit(type, ...args) {
    const set = this._handlers.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        // Report (console, window.onerror) but keep the client running.
        if (globalThis.reportError) globalThis.reportError(err);
        else setTimeout(() => { throw err; });
      }
    }
  }

  _first() {
    const t = this.opts.transports;
    if (!this.opts.WebSocket || !t.includes("websocket")) return "sse";
    if (this._wsBroken && this._sseUsable()) return "sse";
    return "websocket";
  }

  _sseUsable() {
    return !!this.opts.EventSource && this.opts.transports.includes("sse");
  }

  _clear(name) {
    clearTimeout(this._timers[name]);
    delete this._timers[name];
  }

  _later(name, ms, fn) {
    this._clear(name);
    this._timers[name] = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER));
  }

  // _teardown closes the current transport (first, so its messages cannot
  // overlap with the next one's) and cancels every timer.
  _teardown() {
    this._gen++;
    for (const name of Object.keys(this._timers)) this._clear(name);
    if (this._ws) {
      const ws = this._ws;
      this._ws = null;
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      try { ws.close(1000); } catch { /* already closed */ }
    }
    if (this._es) {
      const es = this._es;
      this._es = null;
      es.onopen = es.onmessage = es.onerror = null;
      es.close();
    }
  }

  async _token() {
    if (this.opts.getToken) return await this.opts.getToken();
    return this.opts.token;
  }

  _url(path, token, extra) {
    const base = this.opts.url || globalThis.location.href;
    const u = new URL(path, base);
    if (token) u.searchParams.set("token", token);
    if (this.cursor) u.searchParams.set("since", this.cursor);
    if (this._types && this._types.length) u.searchParams.set("types", this._types.join(","));
    for (const [k, v] of Object.entries(extra || {})) u.searchParams.set(k, v);
    return u;
  }

  // setTypes keeps only messages whose "type" matches one of the patterns
  // ("oracle_upload_*", "-oracle_upload_progress" to exclude; [] for all).
  // A live connection reconnects from its cursor with the new filter, so
  // nothing is lost or repeated.
  setTypes(types) {
    this._types = Array.isArray(types) ? types.slice() : [];
    if (!this._stopped) {
      // Reopen from the last cursor with the new ?types=.
      this._teardown();
      this._open(this._first());
    }
  }

  // history fetches the user's past messages, newest first:
  // { messages: [{channel, epoch, offset, published_at, data}], next }.
  // Pass next as before for the following page ("" when done).
  async history({ limit = 50, before = "" } = {}) {
    const token = await this._token();
    const u = this._url(HISTORY_PATH, token, { limit: String(limit) });
    u.searchParams.delete("since");
    u.searchParams.delete("types");
    if (before) u.searchParams.set("before", before);
    const r = await fetch(u.toString(), { credentials: this.opts.withCredentials ? "include" : "same-origin" });
    if (!r.ok) throw new Error("herald history: HTTP " + r.status);
    return r.json();
  }

  _wsURL(token, withCursor) {
    const u = this._url(WS_PATH, token, { format: "envelope" });
    if (!withCursor) u.searchParams.delete("since");
    u.protocol = u.protocol === "https:" ? "wss:" : u.protocol === "http:" ? "ws:" : u.protocol;
    return u.toString();
  }

  async _open(kind) {
    this._teardown();
    const gen = this._gen;
    this.state = "connecting";
    let token;
    try {
      token = await this._token();
    } catch (err) {
      if (gen !== this._gen || this._stopped) return;
      this._emit("token_error", { error: err });
      this._retry(null);
      return;
    }
    if (gen !== this._gen || this._stopped) return;
    this._tokenValue = token;
    if (kind === "websocket") this._openWS(gen, token);
    else this._openSSE(gen, token);
  }

  _openWS(gen, token) {
    let got = false;
    let ws;
    try {
      ws = new this.opts.WebSocket(this._wsURL(token, true));
    } catch {
      this._lost("websocket", false, 0);
      return;
    }
    this._ws = ws;
    this._later("open", this.opts.wsOpenTimeout, () => {
      if (gen === this._gen && !got) this._lost("websocket", false, 0);
    });
    ws.onmessage = (ev) => {
      if (gen !== this._gen) return;
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      if (!got) {
        got = true;
        this._clear("open");
        this._connected("websocket", token);
      }
      if (m && typeof m === "object" && !("type" in m) && "channel" in m && "data" in m) {
        if (m.cursor) this.cursor = m.cursor;
        this._dispatch(m.data, { cursor: m.cursor, channel: m.channel, transport: "websocket" });
      } else {
        if (m && m.cursor) this.cursor = m.cursor;
        this._control(m, "websocket");
      }
    };
    ws.onclose = (ev) => {
      if (gen !== this._gen) return;
      this._ws = null;
      this._lost("websocket", got, ev.code);
    };
  }

  _openSSE(gen, token) {
    let got = false;
    const es = new this.opts.EventSource(this._url(SSE_PATH, token).toString(), { withCredentials: this.opts.withCredentials });
    this._es = es;
    es.onmessage = (ev) => {
      if (gen !== this._gen) return;
      let m;
      try { m = JSON.parse(ev.data); } catch { m = ev.data; }
      if (ev.lastEventId) this.cursor = ev.lastEventId;
      if (!got) {
        got = true;
        this._connected("sse", token);
      }
      if (m && typeof m === "object" && typeof m.type === "string" && CONTROL.has(m.type)) this._control(m, "sse");
      else this._dispatch(m, { cursor: ev.lastEventId || this.cursor, transport: "sse" });
    };
    es.onerror = () => {
      if (gen !== this._gen) return;
      // Take over from EventSource's own reconnect: we pick the token, the
      // delay and the transport.
      es.onmessage = es.onerror = null;
      es.close();
      this._es = null;
      this._lost("sse", got, 0);
    };
  }

  _connected(kind, token) {
    this._attempt = 0;
    this.state = "open";
    this._setTransport(kind);
    this._emit("connected", { transport: kind });
    if (kind === "websocket") {
      this._wsBroken = false;
      this._scheduleRefresh(jwtExp(token));
    } else if (this.opts.WebSocket && this.opts.transports.includes("websocket")) {
      this._scheduleProbe();
    }
  }

  _setTransport(kind) {
    if (this.transport === kind) return;
    this.transport = kind;
    this._emit("transport", kind);
  }

  // _control handles Herald's control events, then hands them to the app.
  _control(m, kind) {
    switch (m && m.type) {
      case "disconnect":
        this._final = m;
        break;
      case "token_expiring":
        if (kind === "websocket") this._refresh();
        else this._later("switch", 0, () => this._open("sse")); // reconnect with a fresh token
        break;
      case "refreshed":
        this._scheduleRefresh(m.expires_at);
        break;
    }
    this._dispatch(m, { cursor: m && m.cursor, transport: kind, control: true });
  }

  _dispatch(data, meta) {
    if (data && typeof data === "object" && typeof data.type === "string") this._emit(data.type, data, meta);
    this._emit("*", data, meta);
    this._notify(data);
  }

  // _lost: the transport ended (or never got going).
  _lost(kind, hadMessages, code) {
    const final = this._final;
    this._final = null;
    this._teardown();
    if (this._stopped) return;
    if (this.transport) {
      this._emit("disconnected", {
        transport: kind, code, reason: final ? final.reason : "connection_lost",
        reconnect: !(final && final.reconnect === false),
      });
    }
    this._setTransport(null);
    if (final && final.reconnect === false) {
      this._stopped = true;
      this.state = "closed";
      return;
    }
    if (kind === "websocket" && !hadMessages && this._sseUsable()) {
      // Blocked or broken WebSocket: fall back now, probe it from SSE.
      this._wsBroken = true;
      this._open("sse");
      return;
    }
    this._retry(final && final.retry_ms);
  }

  _retry(retryMs) {
    this.state = "connecting";
    const cap = Math.min(this.opts.maxDelay, this.opts.minDelay * 2 ** this._attempt);
    this._attempt = Math.min(this._attempt + 1, 30);
    const delay = retryMs > 0 ? retryMs : Math.random() * cap; // full jitter
    const gen = this._gen;
    this._later("retry", delay, () => {
      if (gen === this._gen && !this._stopped) this._open(this._first());
    });
  }

  _retryNow() {
    if (this._timers.retry && !this._stopped) this._open(this._first());
  }

  // ---- WebSocket token refresh ----

  _scheduleRefresh(expSec) {
    if (!this.opts.getToken || !expSec) return;
    const ms = expSec * 1000 - Date.now() - this.opts.refreshLead;
    const gen = this._gen;
    this._later("refresh", Math.max(1000, ms), () => {
      if (gen === this._gen) this._refresh();
    });
  }

  async _refresh() {
    if (!this.opts.getToken || !this._ws) return;
    const gen = this._gen;
    let token;
    try { token = await this.opts.getToken(); } catch (err) {
      this._emit("token_error", { error: err });
      return;
    }
    // The same token again would not extend anything; Herald's
    // token_expiring and token_expired events get another chance.
    if (gen !== this._gen || !this._ws || this._ws.readyState !== 1 || token === this._tokenValue) return;
    this._tokenValue = token;
    this._ws.send(JSON.stringify({ type: "refresh", token }));
  }

  // ---- back to WebSocket from SSE ----

  _scheduleProbe() {
    const gen = this._gen;
    this._later("probe", this.opts.probeInterval, () => {
      if (gen === this._gen && this.transport === "sse") this._probe(gen);
    });
  }

  // _probe opens a throwaway WebSocket; when Herald's first message comes
  // through, SSE is closed and WebSocket resumes from the last cursor.
  async _probe(gen) {
    let token;
    try { token = await this._token(); } catch { token = this._tokenValue; }
    if (gen !== this._gen) return;
    let ws;
    try { ws = new this.opts.WebSocket(this._wsURL(token, false)); } catch { this._scheduleProbe(); return; }
    let done = false;
    const finish = (ok) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000); } catch { /* ignore */ }
      if (gen !== this._gen || this._stopped) return;
      if (ok) {
        this._wsBroken = false;
        this._open("websocket");
      } else {
        this._scheduleProbe();
      }
    };
    const timer = setTimeout(() => finish(false), this.opts.wsOpenTimeout);
    ws.onmessage = () => finish(true);
    ws.onclose = () => finish(false);
  }

  // ---- OS notifications ----

  _notify(data) {
    const n = this.opts.notify;
    if (!n || !data || typeof data !== "object" || !(n.types || []).includes(data.type)) return;
    if (typeof Notification === "undefined" || Notification.permission !== "granted") return;
    if (n.onlyWhenHidden !== false && globalThis.document && document.visibilityState === "visible") return;
    const pick = (v, d) => (typeof v === "function" ? v(data) : v != null ? v : d);
    try {
      const note = new Notification(pick(n.title, data.type.replace(/_/g, " ")), {
        body: pick(n.body, data.message || ""),
        icon: pick(n.icon, undefined),
        tag: data.type + ":" + (data.transaction_id != null ? data.transaction_id : ""),
      });
      if (typeof n.onClick === "function") {
        note.onclick = (ev) => n.onClick(data, ev);
      }
    } catch { /* e.g. Android Chrome needs a service worker */ }
  }
}

// Herald's control events on SSE (they have no envelope there).
const HISTORY_PATH = "/api/me/history";

const CONTROL = new Set(["disconnect", "token_expiring", "stream_reset", "connection_established"]);

// jwtExp returns a JWT's exp claim (seconds), or 0.
function jwtExp(token) {
  try {
    const p = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(p + "===".slice((p.length + 3) % 4))).exp;
    return typeof exp === "number" ? exp : 0;
  } catch {
    return 0;
  }
}

export default HeraldClient;

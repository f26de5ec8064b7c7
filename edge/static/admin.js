// Herald admin console. Talks to the admin API with the key from
// sessionStorage in the X-Admin-Key header; never puts it in a URL, a
// cookie or the DOM. Data from the server is inserted as text only.
'use strict';
(function () {
  const KEY = 'heraldAdminKey';
  const $ = (id) => document.getElementById(id);
  let prev = null;          // previous status sample, for rates
  let historyChannel = '';  // channel shown in the history table
  let watchOffset = null;   // offset of the last test message, highlighted when it arrives
  let watchChannel = '';
  let timer = null;

  function key() { return sessionStorage.getItem(KEY) || ''; }

  async function api(path, body) {
    const opts = { headers: { 'X-Admin-Key': key() }, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      opts.method = 'POST';
      opts.headers['Content-Type'] = 'application/json';
      opts.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    let j = null;
    try { j = await r.json(); } catch (e) { j = {}; }
    if (r.status === 401) { signOut('The admin key was refused.'); throw new Error('unauthorized'); }
    if (!r.ok) throw new Error((j && (j.message || j.error)) || ('HTTP ' + r.status));
    return j;
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function row(tbody, cells) {
    const tr = el('tr');
    for (const c of cells) {
      const td = el('td');
      if (c instanceof Node) td.appendChild(c); else td.textContent = c == null ? '' : String(c);
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
    return tr;
  }
  function fmtRate(x) { return x >= 100 ? Math.round(x).toString() : x.toFixed(1); }
  function fmtSecs(s) {
    if (s == null) return '–';
    if (s === Infinity) return '> 10 s';
    return s < 1 ? (s * 1000).toFixed(s < 0.01 ? 2 : 1) + ' ms' : s.toFixed(2) + ' s';
  }

  // p99 of the deliveries between two samples: the upper bound of the
  // bucket where 99 % of the new observations fall.
  function p99(nodes, before) {
    const sum = {};
    const add = (list, sign) => { for (const b of list || []) sum[b.le] = (sum[b.le] || 0) + sign * b.count; };
    for (const n of nodes) add(n.latency, 1);
    if (before) for (const n of before) add(n.latency, -1);
    const les = Object.keys(sum).sort((a, b) => (a === '+Inf') - (b === '+Inf') || parseFloat(a) - parseFloat(b));
    const total = sum['+Inf'] || 0;
    if (total <= 0) return null;
    for (const le of les) if (sum[le] >= 0.99 * total) return le === '+Inf' ? Infinity : parseFloat(le);
    return null;
  }

  function renderStatus(st) {
    $('self').textContent = 'this node: ' + st.self;
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    const nodes = st.nodes;
    let ws = 0, sse = 0, delivered = 0, published = 0;
    const tb = $('nodes').tBodies[0];
    tb.textContent = '';
    for (const n of nodes) {
      ws += n.connections.ws || 0; sse += n.connections.sse || 0;
      delivered += n.delivered; published += n.published;
      const health = el('span', n.draining ? 'draining' : (n.healthy ? 'healthy' : 'unhealthy'), n.healthy && !n.draining ? 'ok' : 'bad');
      if (n.error) health.title = n.error;
      const shards = el('div');
      for (const s of n.shards || []) {
        const d = el('div', (s.Healthy ? '● ' : '○ ') + s.Addr + (s.Healthy ? '' : ' ' + (s.Err || 'down')), s.Healthy ? 'ok mono' : 'bad mono');
        shards.appendChild(d);
      }
      if (!n.shards || !n.shards.length) shards.textContent = '—';
      const ingest = n.ingest ? `${n.ingest.groups} groups, ${n.ingest.published} in, ${n.ingest.expired + n.ingest.dropped} lost` : 'off';
      const tr = row(tb, [el('span', n.node, 'mono'), n.version, n.broker, health, shards, ingest, n.connections.ws || 0, n.connections.sse || 0]);
      tr.dataset.node = n.node;
    }
    $('c-nodes').textContent = nodes.length;
    $('c-conns').textContent = ws + sse;
    $('c-ws').textContent = ws;
    $('c-sse').textContent = sse;
    const now = performance.now();
    if (prev) {
      const dt = (now - prev.t) / 1000;
      $('c-rate').textContent = fmtRate(Math.max(0, delivered - prev.delivered) / dt);
      $('c-pub').textContent = fmtRate(Math.max(0, published - prev.published) / dt);
      const q = p99(nodes, prev.nodes);
      $('c-p99').textContent = q == null ? 'idle' : fmtSecs(q);
    }
    prev = { t: now, delivered, published, nodes };
  }

  async function renderHistory() {
    if (!historyChannel) return;
    const h = await api('/admin/history?channel=' + encodeURIComponent(historyChannel) + '&limit=20');
    const tb = $('history').tBodies[0];
    tb.textContent = '';
    $('history').classList.remove('hidden');
    $('hist-msg').textContent = `${h.channel}: epoch ${h.epoch}, newest offset ${h.top}` + (h.messages.length ? '' : ' — no retained messages');
    for (const m of h.messages) {
      const tr = row(tb, [m.offset, m.published_at ? new Date(m.published_at).toLocaleTimeString() : '', el('pre', JSON.stringify(m.data))]);
      tr.dataset.offset = m.offset;
      if (watchOffset !== null && h.channel === watchChannel && m.offset === watchOffset) {
        tr.classList.add('arrived');
        const pm = $('pub-msg');
        if (!pm.dataset.arrived) {
          pm.dataset.arrived = '1';
          pm.appendChild(el('div', `arrived in ${h.channel} at offset ${m.offset}`, 'ok'));
        }
      }
    }
  }

  async function tick() {
    const started = performance.now();
    try {
      renderStatus(await api('/admin/status'));
      await renderHistory();
    } catch (e) {
      if (e.message !== 'unauthorized') $('updated').textContent = 'error: ' + e.message;
    }
    if (!key()) return;
    timer = setTimeout(tick, Math.max(0, 1000 - (performance.now() - started)));
  }

  async function lookup(user) {
    const r = await api('/admin/connections?user_id=' + encodeURIComponent(user));
    const tb = $('user-conns').tBodies[0];
    tb.textContent = '';
    $('user-conns').classList.toggle('hidden', r.connections.length === 0);
    $('user-msg').textContent = `user ${r.user_id}: ${r.connections.length} connection(s)`;
    $('disconnect').disabled = r.connections.length === 0;
    for (const c of r.connections) {
      const types = [c.types, c.preferences && ('prefs: ' + c.preferences)].filter(Boolean).join('; ') || 'all';
      row(tb, [el('span', c.node, 'mono'), c.transport, new Date(c.connected_at).toLocaleString(), c.remote, (c.channels || []).join(', '), types]);
    }
  }

  function signOut(why) {
    sessionStorage.removeItem(KEY);
    clearTimeout(timer);
    prev = null;
    $('app').classList.add('hidden');
    $('login').classList.remove('hidden');
    $('login-error').textContent = why || '';
  }

  async function signIn() {
    $('login').classList.add('hidden');
    $('app').classList.remove('hidden');
    tick();
  }

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $('key').value);
    $('key').value = '';
    try {
      await api('/admin/nodes');
      $('login-error').textContent = '';
      signIn();
    } catch (e) {
      if (e.message !== 'unauthorized') signOut('Cannot reach the admin API: ' + e.message);
    }
  });
  $('logout').addEventListener('click', () => signOut(''));
  $('user-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try { await lookup($('user-id').value.trim()); } catch (e) { $('user-msg').textContent = 'error: ' + e.message; }
  });
  $('disconnect').addEventListener('click', async () => {
    const user = $('user-id').value.trim();
    try {
      const r = await api('/admin/disconnect', { user_id: user, reason: 'disconnected_by_admin' });
      $('user-msg').textContent = `disconnected ${r.disconnected} connection(s) of user ${r.user_id} on ${r.nodes} node(s)`;
      $('disconnect').disabled = true;
      $('user-conns').tBodies[0].textContent = '';
    } catch (e) { $('user-msg').textContent = 'error: ' + e.message; }
  });
  $('pub-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const pm = $('pub-msg');
    pm.textContent = '';
    delete pm.dataset.arrived;
    let data;
    try { data = JSON.parse($('pub-data').value); } catch (e) { pm.textContent = 'data is not valid JSON: ' + e.message; return; }
    const body = { data };
    body[$('pub-kind').value] = $('pub-target').value.trim();
    try {
      const r = await api('/admin/publish', body);
      pm.appendChild(el('div', `published to ${r.channel} at offset ${r.offset}; watching its history…`));
      watchOffset = r.offset; watchChannel = r.channel;
      historyChannel = r.channel;
      $('hist-channel').value = r.channel;
      await renderHistory();
    } catch (e) { pm.textContent = 'error: ' + e.message; }
  });
  $('hist-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    historyChannel = $('hist-channel').value.trim();
    try { await renderHistory(); } catch (e) { $('hist-msg').textContent = 'error: ' + e.message; }
  });

  if (key()) signIn(); else signOut('');
})();

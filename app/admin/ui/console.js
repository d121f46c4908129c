// The console page. Every figure comes from the gateway: the live feed (/admin/api/feed,
// Server-Sent Events) and the user lookup; actions go through /admin/api/act and the
// answer shown is the service API's own. Nothing is computed that the gateway did not say.
"use strict";
(() => {
  const $ = (sel) => document.querySelector(sel);
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const KEEP_POINTS = 600; // the gateway keeps ten minutes too
  const KEEP_EVENTS = 500;
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const fmtAge = (s) => (s < 90 ? `${s}s` : s < 5400 ? `${Math.round(s / 60)}m` : s < 172800 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86400)}d`);
  const fmtTime = (ms) => new Date(ms).toLocaleTimeString();

  // ---- overview: charts -------------------------------------------------------------
  const data = { t: [], connections: [], msgsIn: [], msgsOut: [], refused: [] };
  const charts = [];
  function chart(el, series, cols) {
    const opts = { width: el.clientWidth || 300, height: 160, legend: { show: true }, scales: { x: { time: true } }, series: [{}, ...series], axes: [{ space: 90, values: (_u, ticks) => ticks.map((t) => new Date(t * 1000).toLocaleTimeString()) }, { size: 50 }] };
    const u = new uPlot(opts, [data.t, ...cols.map((c) => data[c])], el);
    charts.push({ u, el, cols });
  }
  function redraw() {
    for (const c of charts) c.u.setData([data.t, ...c.cols.map((k) => data[k])]);
  }
  window.addEventListener("resize", () => {
    for (const c of charts) c.u.setSize({ width: c.el.clientWidth, height: 160 });
  });
  function addSample(s) {
    for (const k of Object.keys(data)) {
      data[k].push(s[k]);
      if (data[k].length > KEEP_POINTS) data[k].shift();
    }
  }

  // ---- overview: nodes and totals ----------------------------------------------------
  // Nodes seen once stay listed: one that drops out of the gateway's list is shown as not
  // answering rather than silently disappearing.
  const seen = new Map();
  let lastTick = 0;
  function showNodes(view, sample) {
    const now = Date.now();
    const current = new Set();
    for (const n of view.nodes) {
      current.add(n.node);
      seen.set(n.node, { row: n, at: now });
    }
    const late = view.downAfterMs ? view.downAfterMs / 3 + 2000 : Infinity;
    let conns = 0;
    let users = 0;
    let live = 0;
    const rows = [];
    for (const [name, { row, at }] of [...seen].sort(([a], [b]) => a.localeCompare(b))) {
      let status = "up";
      if (!current.has(name)) status = `not answering (dropped ${fmtAge(Math.round((now - at) / 1000))} ago)`;
      else if (row.lastAnnounce && now - Date.parse(row.lastAnnounce) > late) status = `late (last heard ${fmtTime(Date.parse(row.lastAnnounce))})`;
      else if (row.draining) status = "draining";
      if (current.has(name)) {
        conns += row.connections;
        users += row.users;
        live++;
      }
      const cls = status === "up" ? "ok" : status === "draining" ? "warn" : "bad";
      rows.push(
        `<tr class="${cls}"><td>${esc(name)}</td><td>${esc(status)}</td><td>${esc(row.runtime)}</td><td>${esc(row.version)}</td><td>${esc(fmtAge(row.uptimeS))}</td>` +
          `<td class="num" data-node-connections="${esc(name)}">${row.connections}</td><td class="num">${row.users}</td><td>${esc(row.broker)}</td><td>${row.draining ? "yes" : "no"}</td></tr>`,
      );
    }
    $("#nodes tbody").innerHTML = rows.join("");
    $("#t-nodes").textContent = String(live);
    $("#t-conns").textContent = String(conns);
    $("#t-users").textContent = String(users);
    if (sample) {
      $("#t-in").textContent = String(sample.msgsIn);
      $("#t-out").textContent = String(sample.msgsOut);
      $("#t-refused").textContent = String(sample.refused);
    }
    const src = view.source === "cluster" ? "Nodes from GET /v1/nodes (every node's announce)." : "Only this node: the cluster's node list (GET /v1/nodes) is not available on this gateway.";
    $("#nodes-source").textContent = view.error ? `${src} ${view.error}` : src;
  }

  // ---- events tail ------------------------------------------------------------------
  const events = [];
  function eventLine(e) {
    const who = e.svc ? `${e.svc}/${e.user}` : e.node ?? "";
    const extra =
      e.event === "disconnect" ? ` code ${e.code} ${e.reason ?? ""} (by ${e.closedBy})` : e.event === "refused" ? ` ${e.count} × ${e.reason}` : e.event === "skipped" ? ` ${e.count} events not shown (over 100/s)` : e.conn ? ` ${e.conn}` : "";
    const whoHtml = e.svc ? `<a href="#user" data-svc="${esc(e.svc)}" data-user="${esc(e.user)}">${esc(who)}</a>` : esc(who);
    return `<li class="ev-${esc(e.event)}"><time>${esc(fmtTime(Date.parse(e.time)))}</time> <b>${esc(e.event)}</b> ${whoHtml}${esc(extra)}</li>`;
  }
  function renderEvents() {
    const f = new FormData($("#filter"));
    const svc = String(f.get("svc")).trim();
    const user = String(f.get("user")).trim();
    const shown = events.filter((e) => (!svc || e.svc === svc) && (!user || e.user === user));
    $("#event-list").innerHTML = shown.slice(-200).reverse().map(eventLine).join("");
    $("#events-note").textContent = `${shown.length} of the last ${events.length} events`;
  }
  $("#filter").addEventListener("input", renderEvents);
  // A user named in an event opens in the user view.
  $("#event-list").addEventListener("click", (e) => {
    const a = e.target.closest("a[data-user]");
    if (!a) return;
    $("#find input[name=svc]").value = a.dataset.svc;
    $("#find input[name=user]").value = a.dataset.user;
    $("#find").requestSubmit();
  });
  $("#filter").addEventListener("submit", (e) => e.preventDefault());
  function addEvent(e) {
    events.push(e);
    if (events.length > KEEP_EVENTS) events.shift();
    if (selected && e.svc === selected.svc && e.user === selected.user) void lookUp();
  }

  // ---- the feed ---------------------------------------------------------------------
  const feedState = (text, cls) => {
    const el = $("#feed-state");
    el.textContent = text;
    el.className = `pill ${cls}`;
  };
  const feed = new EventSource("/admin/api/feed");
  feed.addEventListener("history", (m) => {
    const h = JSON.parse(m.data);
    for (const k of Object.keys(data)) data[k] = h.series[k].slice(-KEEP_POINTS);
    if (charts.length === 0) {
      chart($("#chart-conns"), [{ label: "connections", stroke: "#2563eb", width: 2 }], ["connections"]);
      chart($("#chart-msgs"), [{ label: "in/s", stroke: "#059669", width: 2 }, { label: "out/s", stroke: "#d97706", width: 2 }], ["msgsIn", "msgsOut"]);
      chart($("#chart-refused"), [{ label: "refused/s", stroke: "#dc2626", width: 2 }], ["refused"]);
    } else redraw();
    events.length = 0;
    for (const e of h.events) addEvent(e);
    renderEvents();
    showNodes(h.nodes, null);
    lastTick = Date.now();
    feedState("live", "ok");
  });
  feed.addEventListener("tick", (m) => {
    const { sample, nodes } = JSON.parse(m.data);
    addSample(sample);
    redraw();
    showNodes(nodes, sample);
    lastTick = Date.now();
    feedState("live", "ok");
  });
  feed.addEventListener("event", (m) => {
    addEvent(JSON.parse(m.data));
    renderEvents();
  });
  feed.onerror = () => {
    if (feed.readyState === EventSource.CLOSED) feedState("feed closed: sign in again", "bad");
  };
  // The gateway ticks every second: silence means it (or the way to it) stopped answering.
  setInterval(() => {
    if (lastTick && Date.now() - lastTick > 3000) feedState(`gateway not answering since ${fmtTime(lastTick)}`, "bad");
  }, 1000);

  // ---- find a user --------------------------------------------------------------------
  let selected = null;
  const showAnswer = (a) => ($("#answer").textContent = `${a.route} → ${a.status}\n${typeof a.body === "string" ? a.body : JSON.stringify(a.body, null, 2)}`);
  function describe(a, ok) {
    if (a.status === 200) return ok(a.body);
    if (a.status === 404 && typeof a.body === "string") return `not available on this gateway (${a.route} → 404)`;
    return `${a.route} → ${a.status}: ${typeof a.body === "string" ? a.body : a.body.error ?? JSON.stringify(a.body)}`;
  }
  async function lookUp() {
    if (!selected) return;
    const { svc, user } = selected;
    const res = await fetch(`/admin/api/user/${encodeURIComponent(svc)}/${encodeURIComponent(user)}`);
    const body = await res.json();
    if (!res.ok) return showAnswer({ route: "GET /admin/api/user", status: res.status, body });
    $("#user-view").hidden = false;
    $("#user-title").textContent = `${svc} / ${user}`;
    const p = body.presence;
    const conns = p.status === 200 ? p.body.connections : [];
    $("#user-summary").textContent = describe(p, (b) => `${b.online ? "online" : "offline"}: ${b.connections.length} connection(s)` + (b.missing?.length ? `; nodes not answering: ${b.missing.join(", ")}` : ""));
    $("#conns tbody").innerHTML = conns
      .map(
        (c) =>
          `<tr data-conn="${esc(c.conn)}"><td data-label="connection">${esc(c.conn)}</td><td data-label="node">${esc(c.node)}</td><td data-label="since">${esc(new Date(c.since).toLocaleString())}</td><td data-label="mode">${esc(c.mode)}</td>` +
          `<td class="num" data-label="frames in">${c.framesIn ?? "–"}</td><td class="num" data-label="frames out">${c.framesOut ?? "–"}</td><td><button data-act="kick-conn" data-conn="${esc(c.conn)}" class="danger">Disconnect</button></td></tr>`,
      )
      .join("");
    const sel = $("#send select[name=conn]");
    const keep = sel.value;
    sel.innerHTML = conns.map((c) => `<option>${esc(c.conn)}</option>`).join("");
    if (conns.some((c) => c.conn === keep)) sel.value = keep;
    $("#user-groups").textContent = describe(body.groups, (b) => (b.groups?.length ? b.groups.join(", ") : "none"));
    const groups = body.groups.status === 200 ? body.groups.body.groups ?? [] : [];
    $("#user-group-list").innerHTML = groups.map((g) => `<option value="${esc(g)}">`).join("");
    $("#user-mailbox").textContent = describe(body.mailbox, (b) => `${b.pending} message(s) waiting`);
  }
  $("#find").addEventListener("submit", (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    selected = { svc: String(f.get("svc")).trim(), user: String(f.get("user")).trim() };
    void lookUp();
  });
  // Presence is asked of every node: a few seconds between lookups keeps the cluster quiet.
  setInterval(() => {
    if (selected && !document.hidden) void lookUp();
  }, 3000);

  // ---- act ----------------------------------------------------------------------------
  async function act(action, question) {
    if (!confirm(question)) return;
    const res = await fetch("/admin/api/act", { method: "POST", headers: { "content-type": "application/json", "x-wsgate-csrf": csrf }, body: JSON.stringify(action) });
    const body = await res.json();
    showAnswer(res.status === 200 ? body : { route: "POST /admin/api/act", status: res.status, body });
    setTimeout(() => void lookUp(), 300);
  }
  // Only the field the chosen target needs is shown.
  const showTargetFields = () => {
    const target = $("#send select[name=target]").value;
    $("#send select[name=conn]").hidden = target !== "conn";
    $("#send input[name=group]").hidden = target !== "group";
    $("#send input[name=group]").required = target === "group";
  };
  $("#send select[name=target]").addEventListener("change", showTargetFields);
  showTargetFields();
  $("#send").addEventListener("submit", (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const text = String(f.get("text"));
    const { svc, user } = selected;
    const target = String(f.get("target"));
    const conn = String(f.get("conn") ?? "");
    const group = String(f.get("group")).trim();
    const [action, to] =
      target === "conn" ? [{ kind: "send-conn", svc, user, conn, text }, `connection ${conn} of ${svc}/${user}`]
      : target === "group" ? [{ kind: "send-group", svc, group, text }, `every member of group ${svc}/${group}`]
      : target === "broadcast" ? [{ kind: "broadcast", svc, text }, `EVERY connection of service ${svc}`]
      : [{ kind: "send-user", svc, user, text }, `user ${svc}/${user}`];
    void act(action, `Send this message to ${to}?\n\n${text.slice(0, 200)}`);
  });
  $("#kick").addEventListener("submit", (e) => {
    e.preventDefault();
    const mode = String(new FormData(e.target).get("mode"));
    const { svc, user } = selected;
    void act({ kind: "disconnect-user", svc, user, mode }, `Disconnect every connection of ${svc}/${user} (${mode})?`);
  });
  $("#conns").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-act=kick-conn]");
    if (!b) return;
    const mode = String(new FormData($("#kick")).get("mode"));
    const { svc, user } = selected;
    void act({ kind: "disconnect-conn", svc, user, conn: b.dataset.conn, mode }, `Disconnect connection ${b.dataset.conn} of ${svc}/${user} (${mode})?`);
  });
})();

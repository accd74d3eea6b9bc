// The threadloom approval inbox: plain JavaScript over the server's /approvals API.
// Views (hash routes): #/signin, #/ (pending list), #/r/<thread>/<request> (decide),
// #/audit/<thread> (audit trail). The API key or token is kept in sessionStorage and
// sent as "Authorization: Bearer"; the reviewer of every decision is that identity.
"use strict";

(function () {
  const KEY = "threadloom.inbox.key";
  const state = {
    me: null,
    filters: { graph: "", status: "", assignee: "", sort: "newest" },
    stream: null,
    skew: 0,
    batch: null,
    timer: null,
  };
  const main = document.getElementById("main");
  const live = document.getElementById("live");

  // -- small helpers -------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (v === true) el.setAttribute(k, "");
      else el.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function say(text) {
    live.textContent = "";
    window.setTimeout(() => { live.textContent = text; }, 50);
  }

  function json(value) {
    return typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value, null, 0);
  }

  function shortId(id) {
    return "…" + String(id || "").slice(-8);  // ids are time-ordered: the end differs
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  function ago(iso) {
    if (!iso) return "";
    const s = Math.round((Date.now() + state.skew - new Date(iso).getTime()) / 1000);
    if (s < 60) return "just now";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return Math.floor(s / 86400) + " d ago";
  }

  function countdown(iso) {
    let s = Math.round((new Date(iso).getTime() - Date.now() - state.skew) / 1000);
    const late = s <= 0;
    s = Math.abs(s);
    const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
    const text = hh ? `${hh}h ${String(mm).padStart(2, "0")}m`
      : `${mm}:${String(ss).padStart(2, "0")}`;
    return { late, text };
  }

  function deadlineNode(deadline) {
    if (!deadline || !deadline.at) return h("span", { class: "deadline none" }, "no deadline");
    return h("span", { class: "deadline", "data-deadline": deadline.at,
                       "data-on-timeout": deadline.on_timeout || "" }, "");
  }

  function tickDeadlines() {
    for (const el of document.querySelectorAll("[data-deadline]")) {
      const { late, text } = countdown(el.dataset.deadline);
      el.classList.toggle("late", late);
      el.textContent = late
        ? `deadline passed: ${el.dataset.onTimeout || "its decision"} is being applied`
        : `due in ${text} (then ${el.dataset.onTimeout || "decided"})`;
      el.title = "Deadline " + when(el.dataset.deadline);
    }
  }

  function quorumText(row) {
    const got = row.approvals.length;
    if (row.quorum > 1) return `${got} of ${row.quorum} approvals`;
    return got ? `${got} approval` : "1 approval needed";
  }

  function rolesText(roles) {
    return roles && roles.length ? roles.join(", ") : "anyone";
  }

  // -- the API -------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.detail) || `HTTP ${status}`);
      this.status = status;
      this.body = body || {};
    }
  }

  function headers(extra) {
    const key = sessionStorage.getItem(KEY);
    const out = Object.assign({ Accept: "application/json" }, extra || {});
    if (key) out.Authorization = "Bearer " + key;
    return out;
  }

  async function api(path, options) {
    const opts = Object.assign({}, options || {});
    opts.headers = headers(opts.body ? { "Content-Type": "application/json" } : {});
    const res = await fetch(path, opts);
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = { detail: text }; }
    if (res.status === 401) {
      signOut("Your key was not accepted: sign in again.");
      throw new ApiError(401, body);
    }
    if (!res.ok) throw new ApiError(res.status, body);
    return body;
  }

  // -- live updates (server-sent events, read with fetch so the key stays in a header) --

  function streamStatus(text, on) {
    const el = document.getElementById("stream-state");
    if (!el) return;
    el.textContent = text;
    el.dataset.state = on ? "open" : "closed";
  }

  async function listen() {
    if (state.stream) return;
    const ctrl = new AbortController();
    state.stream = ctrl;
    try {
      const res = await fetch("/approvals/stream", { headers: headers(), signal: ctrl.signal });
      if (!res.ok) throw new Error("HTTP " + res.status);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf = (buf + value).replace(/\r\n/g, "\n");
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let name = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) name = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (data) onEvent(name, JSON.parse(data));
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted) return;
    } finally {
      if (state.stream === ctrl) state.stream = null;
    }
    if (!ctrl.signal.aborted && sessionStorage.getItem(KEY) !== null) {
      streamStatus("Live updates: reconnecting…", false);
      window.setTimeout(listen, 2000);
    }
  }

  function stopListening() {
    if (state.stream) state.stream.abort();
    state.stream = null;
  }

  function describeEvent(kind, data) {
    const row = data.row || {};
    const d = data.decision || {};
    const who = (d.who && d.who.id) || "someone";
    if (row.kind === "answer" || row.kind === "resume") {
      if (kind === "requested") return `New ${row.kind === "answer" ? "question" : "pause"}: ${row.summary}`;
      if (kind === "answered") return `${who} ${row.kind === "answer" ? "answered" : "resumed"} ${row.summary}`;
      return `${row.summary}: withdrawn, the thread moved on`;
    }
    if (kind === "requested") return `New request: ${row.action} (${row.summary})`;
    if (kind === "expired") {
      return `${row.action} expired: its deadline decided ${d.decision || "it"}`;
    }
    if (kind === "answered") {
      const progress = data.pending ? ` (${quorumText(row)})` : "";
      return `${who} answered ${row.action}: ${d.decision || "decided"}${progress}`;
    }
    return `${row.action} was withdrawn: the thread moved on`;
  }

  function onEvent(kind, data) {
    if (kind === "ready") {
      streamStatus("Live updates on", true);
      if (current().view === "list") loadList();
      return;
    }
    const text = describeEvent(kind, data);
    const log = document.getElementById("activity");
    if (log) {
      log.prepend(h("li", { class: "event " + kind }, h("span", { class: "when" },
        new Date().toLocaleTimeString()), " ", text));
      while (log.children.length > 20) log.lastChild.remove();
    }
    say(text);
    const route = current();
    if (route.view === "list") loadList();
    if (route.view === "decide" && state.batch && data.row &&
        data.row.thread_id === state.batch.thread_id &&
        state.batch.requests.some((r) => r.request_id === data.row.request_id)) {
      const note = document.getElementById("changed");
      if (note) {
        note.hidden = false;
        note.textContent = `${text}. What you see may be out of date: reload this page ` +
          "before deciding (a decision on an older version is refused).";
      }
    }
  }

  // -- routing -------------------------------------------------------------------------

  function current() {
    const parts = (location.hash || "#/").slice(2).split("/").map(decodeURIComponent);
    if (parts[0] === "signin") return { view: "signin" };
    if (parts[0] === "r" && parts[1] && parts[2]) {
      return { view: "decide", thread: parts[1], request: parts[2] };
    }
    if (parts[0] === "audit" && parts[1]) return { view: "audit", thread: parts[1] };
    return { view: "list" };
  }

  function show(title, ...children) {
    main.replaceChildren(...children);
    document.title = title + " · threadloom inbox";
    const heading = main.querySelector("h1");
    if (heading) {
      heading.tabIndex = -1;
      heading.focus();
    }
    tickDeadlines();
  }

  async function route() {
    const r = current();
    state.batch = null;
    if (!sessionStorage.getItem(KEY) && r.view !== "signin") {
      location.hash = "#/signin";
      return;
    }
    if (r.view !== "signin" && !state.me) {
      try {
        state.me = await api("/approvals/me");
      } catch (e) {
        return;
      }
      renderWho();
      listen();
    }
    if (r.view === "signin") return viewSignIn();
    if (r.view === "decide") return viewDecide(r.thread, r.request);
    if (r.view === "audit") return viewAudit(r.thread);
    return viewList();
  }

  function renderWho() {
    const who = document.getElementById("who");
    if (!state.me) {
      who.hidden = true;
      return;
    }
    document.getElementById("who-name").textContent = state.me.display_name || state.me.identity;
    document.getElementById("who-roles").textContent =
      "roles: " + (state.me.roles.length ? state.me.roles.join(", ") : "none");
    who.hidden = false;
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    state.me = null;
    stopListening();
    renderWho();
    state.signinMessage = message || "";
    if (location.hash !== "#/signin") location.hash = "#/signin";
    else viewSignIn();
  }

  // -- sign in -------------------------------------------------------------------------

  function viewSignIn() {
    const error = h("p", { id: "signin-error", class: "error", role: "alert" },
      state.signinMessage || "");
    state.signinMessage = "";
    const input = h("input", { id: "key", name: "key", type: "password", required: true,
                               autocomplete: "off", spellcheck: "false" });
    const form = h("form", { id: "signin-form", class: "card narrow" },
      h("label", { for: "key" }, "API key or token"),
      input,
      h("p", { class: "hint" }, "The key identifies you: every decision you make is " +
        "recorded under its identity. It is kept only for this browser tab."),
      h("button", { type: "submit", class: "primary" }, "Sign in"),
      error);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(KEY, input.value.trim());
      try {
        const me = await api("/approvals/me");
        state.me = me;
        renderWho();
        listen();
        location.hash = "#/";
      } catch (e) {
        sessionStorage.removeItem(KEY);
        error.textContent = e.status === 401 ? "This key was not accepted." : e.message;
      }
    });
    show("Sign in", h("h1", {}, "Sign in to the approval inbox"), form);
    input.focus();
  }

  // -- the list ------------------------------------------------------------------------

  function select(id, label, value, options) {
    const el = h("select", { id, name: id },
      options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
    return h("label", { for: id }, label, el);
  }

  async function viewList() {
    const filters = h("form", { id: "filters", class: "filters", "aria-label": "Filter and sort" });
    const rows = h("ul", { id: "rows", class: "rows", "aria-label": "Pending approvals" });
    show("Pending approvals",
      h("div", { class: "titlebar" },
        h("h1", {}, "Pending approvals ", h("span", { id: "count", class: "count" }, "")),
        h("p", { id: "stream-state", class: "muted", "data-state": state.stream ? "open" : "closed" },
          state.stream ? "Live updates on" : "Live updates: connecting…")),
      filters,
      rows,
      h("p", { id: "empty", class: "empty", hidden: true }, "Nothing is waiting for you."),
      h("section", { class: "activity-box", "aria-labelledby": "activity-h" },
        h("h2", { id: "activity-h" }, "Activity"),
        h("ol", { id: "activity", class: "activity" })));
    filters.addEventListener("change", (ev) => {
      const key = ev.target.id.replace("f-", "");
      state.filters[key] = ev.target.value;
      loadList();
    });
    filters.addEventListener("submit", (ev) => ev.preventDefault());
    await loadList();
  }

  let loading = null;
  async function loadList() {
    if (loading) {
      loading.again = true;
      return;
    }
    loading = { again: false };
    try {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(state.filters)) if (v) q.set(k, v);
      const data = await api("/approvals?" + q.toString());
      if (current().view === "list") renderList(data);
    } catch (e) {
      const rows = document.getElementById("rows");
      if (rows && e.status !== 401) {
        rows.replaceChildren(h("li", { class: "error", role: "alert" }, e.message));
      }
    } finally {
      const again = loading.again;
      loading = null;
      if (again) loadList();
    }
  }

  function renderList(data) {
    const first = data.items[0];
    if (first && first.now) state.skew = new Date(first.now).getTime() - Date.now();
    const filters = document.getElementById("filters");
    const f = state.filters;
    if (f.graph && !data.graphs.includes(f.graph)) data.graphs.push(f.graph);
    if (f.assignee && !data.assignees.includes(f.assignee)) data.assignees.push(f.assignee);
    const focused = document.activeElement && document.activeElement.id;
    filters.replaceChildren(
      select("f-graph", "Graph", f.graph, [["", "All graphs"], ...data.graphs.map((g) => [g, g])]),
      select("f-status", "Status", f.status, [["", "Any status"], ["waiting", "Waiting"],
        ["partial", "Partly approved"], ["overdue", "Deadline passed"]]),
      select("f-assignee", "Assigned to", f.assignee, [["", "Anyone or my roles"],
        ...data.assignees.map((a) => [a, a === "anyone" ? "Anyone (no role)" : "Role " + a])]),
      select("f-sort", "Sort", f.sort, [["newest", "Newest first"], ["oldest", "Oldest first"],
        ["urgent", "Most urgent first"]]));
    if (focused && focused.startsWith("f-")) document.getElementById(focused).focus();
    document.getElementById("count").textContent = `(${data.total})`;
    const rows = document.getElementById("rows");
    rows.replaceChildren(...data.items.map(renderRow));
    document.getElementById("empty").hidden = data.items.length > 0;
    tickDeadlines();
  }

  function renderRow(row) {
    const href = `#/r/${encodeURIComponent(row.thread_id)}/${encodeURIComponent(row.request_id)}`;
    if (row.kind === "answer" || row.kind === "resume") {
      return h("li", { class: "row status-" + row.status + " kind-" + row.kind,
                       "data-key": row.key, "data-action": row.action, "data-kind": row.kind },
        h("a", { href, class: "row-link" },
          h("span", { class: "row-main" },
            h("strong", { class: "action" }, row.kind === "answer" ? "Answer" : "Resume"),
            h("code", { class: "summary" }, row.summary)),
          h("span", { class: "row-meta" },
            h("span", {}, `${row.graph_id || "graph?"} · thread ${shortId(row.thread_id)}`),
            h("span", {}, `asked by ${row.asked_by || "unknown"} ${ago(row.asked_at)}`),
            h("span", { class: "badge" }, row.kind === "answer" ? "interrupt" : "breakpoint"))));
    }
    return h("li", { class: "row status-" + row.status, "data-key": row.key,
                     "data-action": row.action },
      h("a", { href, class: "row-link" },
        h("span", { class: "row-main" },
          h("strong", { class: "action" }, row.action),
          h("code", { class: "summary" }, row.summary)),
        h("span", { class: "row-meta" },
          h("span", {}, `${row.graph_id || "graph?"} · thread ${shortId(row.thread_id)}`),
          h("span", {}, `asked by ${row.asked_by || "unknown"} ${ago(row.asked_at)}`),
          deadlineNode(row.deadline),
          h("span", { class: "quorum" }, quorumText(row)),
          h("span", { class: "badge" }, "for " + rolesText(row.roles)),
          row.batch_size > 1 ? h("span", { class: "badge batch" },
            `batch of ${row.batch_size}`) : null,
          row.you_approved ? h("span", { class: "badge mine" }, "you approved") : null)));
  }

  // -- the decision page ---------------------------------------------------------------

  const CHOICES = [
    ["accept", "Approve", "Run it as proposed."],
    ["edit", "Edit", "Change the arguments, then approve the changed call."],
    ["response", "Respond", "Do not run it; answer the agent with text."],
    ["reject", "Reject", "Do not run it; tell the agent why."],
    ["ignore", "Ignore", "Do not run it, without a message."],
  ];

  function fieldsOf(row) {
    const schema = row.args_schema || {};
    const props = schema.properties || {};
    const names = Object.keys(props).length ? Object.keys(props) : Object.keys(row.args);
    for (const k of Object.keys(row.args)) if (!names.includes(k)) names.push(k);
    return names.map((name) => {
      const p = props[name] || {};
      let type = p.type || (Array.isArray(p.anyOf) ? (p.anyOf.find((x) => x.type !== "null") || {}).type : null);
      const value = row.args[name];
      if (!type) {
        type = typeof value === "number" ? "number" : typeof value === "boolean" ? "boolean"
          : typeof value === "string" || value === undefined ? "string" : "json";
      }
      if (type === "object" || type === "array") type = "json";
      return { name, type, enum: p.enum, title: p.title || name, help: p.description,
               required: (schema.required || []).includes(name), value };
    });
  }

  function editInput(req, field) {
    const id = `edit-${req.request_id}-${field.name}`;
    let input;
    if (field.enum) {
      input = h("select", { id }, field.enum.map((v) =>
        h("option", { value: JSON.stringify(v), selected: v === field.value }, String(v))));
    } else if (field.type === "boolean") {
      input = h("input", { id, type: "checkbox", checked: !!field.value });
    } else if (field.type === "number" || field.type === "integer") {
      input = h("input", { id, type: "number", step: field.type === "integer" ? "1" : "any",
                           value: field.value ?? "" });
    } else if (field.type === "json") {
      input = h("textarea", { id, rows: 3 }, JSON.stringify(field.value ?? null, null, 2));
    } else {
      const long = typeof field.value === "string" && field.value.length > 60;
      input = long ? h("textarea", { id, rows: 3 }, field.value)
        : h("input", { id, type: "text", value: field.value ?? "" });
    }
    input.dataset.field = field.name;
    input.dataset.type = field.enum ? "enum" : field.type;
    return h("div", { class: "field" },
      h("label", { for: id }, field.title, field.required ? " *" : ""),
      input,
      field.help ? h("small", {}, field.help) : null);
  }

  function readEdit(box) {
    const args = {};
    const problems = [];
    for (const input of box.querySelectorAll("[data-field]")) {
      const name = input.dataset.field, type = input.dataset.type;
      let value;
      if (type === "boolean") value = input.checked;
      else if (type === "enum") value = JSON.parse(input.value);
      else if (type === "number" || type === "integer") {
        if (input.value === "") { problems.push(`${name}: a number is needed`); continue; }
        value = Number(input.value);
      } else if (type === "json") {
        try { value = JSON.parse(input.value); } catch (e) {
          problems.push(`${name}: not valid JSON`);
          continue;
        }
      } else value = input.value;
      args[name] = value;
    }
    return { args, problems };
  }

  function diffArgs(before, after) {
    const out = [];
    for (const k of Object.keys(before)) {
      if (!(k in after)) out.push({ k, kind: "removed", from: before[k] });
      else if (JSON.stringify(before[k]) !== JSON.stringify(after[k])) {
        out.push({ k, kind: "changed", from: before[k], to: after[k] });
      }
    }
    for (const k of Object.keys(after)) if (!(k in before)) out.push({ k, kind: "added", to: after[k] });
    return out;
  }

  function renderDiff(changes) {
    if (!changes.length) return h("p", { class: "muted" }, "No change yet: an unchanged edit is an approval.");
    return h("table", { class: "diff" },
      h("caption", {}, "Your edit, against the proposed arguments"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Argument"),
        h("th", { scope: "col" }, "Proposed"), h("th", { scope: "col" }, "Yours"))),
      h("tbody", {}, changes.map((c) => h("tr", { class: c.kind },
        h("th", { scope: "row" }, c.k),
        h("td", {}, c.kind === "added" ? "—" : h("del", {}, json(c.from))),
        h("td", {}, c.kind === "removed" ? "(removed)" : h("ins", {}, json(c.to)))))));
  }

  function argsTable(args, caption) {
    return h("table", { class: "args" }, h("caption", {}, caption),
      h("tbody", {}, Object.entries(args).map(([k, v]) =>
        h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, h("code", {}, json(v)))))));
  }

  // a plain interrupt (answered with text or JSON) or a static pause (resumed)
  function openBlock(req) {
    const rid = req.request_id;
    const block = h("fieldset", { class: "request card", "data-request-id": rid,
                                  "data-kind": req.kind },
      h("legend", {}, req.kind === "answer" ? "The graph asks" : "The graph is paused"),
      h("ul", { class: "facts" },
        h("li", {}, `Asked by ${req.asked_by || "unknown"} at ${when(req.asked_at)}`),
        req.next && req.next.length ? h("li", {}, "Next: " + req.next.join(", ")) : null));
    if (req.kind === "resume") {
      block.append(h("p", {}, "It stopped at a breakpoint. Resume it to let it continue."),
        h("div", { class: "choice" },
          h("input", { type: "radio", id: `choice-${rid}-resume`, name: `choice-${rid}`,
                       value: "resume", required: true }),
          h("label", { for: `choice-${rid}-resume` }, h("strong", {}, "Resume"))));
      block.addEventListener("change", updateSubmit);
      return block;
    }
    const valueId = `answer-${rid}`;
    block.append(
      h("pre", { class: "values interrupt-value" }, JSON.stringify(req.value, null, 2)),
      h("input", { type: "hidden", name: `choice-${rid}`, value: "answer" }),
      h("fieldset", { class: "choices" }, h("legend", {}, "Send the answer as"),
        [["text", "Text"], ["json", "JSON"]].map(([v, label]) => h("div", { class: "choice" },
          h("input", { type: "radio", id: `as-${rid}-${v}`, name: `as-${rid}`, value: v,
                       checked: v === "text" }),
          h("label", { for: `as-${rid}-${v}` }, label)))),
      h("label", { for: valueId }, "Your answer"),
      h("textarea", { id: valueId, class: "answer-value", rows: 3, required: true }));
    return block;
  }

  function openAnswer(block, req, problems) {
    const answer = { request_id: req.request_id, digest: req.digest, type: req.kind };
    if (req.kind === "resume") {
      if (!block.querySelector("input[type=radio]:checked")) {
        problems.push("Choose Resume to let the graph continue.");
      }
      return answer;
    }
    const text = block.querySelector("textarea.answer-value").value;
    const asJson = block.querySelector(`input[name="as-${CSS.escape(req.request_id)}"]:checked`);
    if (asJson && asJson.value === "json") {
      try { answer.value = JSON.parse(text); } catch (e) {
        problems.push("The answer is not valid JSON.");
      }
    } else if (!text.trim()) {
      problems.push("Write your answer.");
    } else {
      answer.value = text;
    }
    return answer;
  }

  function requestBlock(req, index) {
    if (req.kind === "answer" || req.kind === "resume") return openBlock(req);
    const rid = req.request_id;
    const allowed = CHOICES.filter(([t]) => req.allowed.includes(t));
    const choices = h("fieldset", { class: "choices" },
      h("legend", {}, "Your decision"),
      allowed.map(([type, label, help]) => {
        const id = `choice-${rid}-${type}`;
        const blocked = type === "accept" && req.you_approved;
        return h("div", { class: "choice" },
          h("input", { type: "radio", id, name: `choice-${rid}`, value: type,
                       disabled: blocked, required: true }),
          h("label", { for: id }, h("strong", {}, label), " ",
            h("span", { class: "muted" }, blocked ? "You already approved this one." : help)));
      }));
    const editBox = h("div", { class: "panel edit-panel", hidden: true },
      h("h4", {}, "Edit the arguments"),
      fieldsOf(req).map((f) => editInput(req, f)),
      h("div", { class: "diff-box", "aria-live": "polite" }));
    const messageId = `message-${rid}`;
    const messageBox = h("div", { class: "panel message-panel", hidden: true },
      h("label", { for: messageId, class: "message-label" }, "Reason for the agent"),
      h("textarea", { id: messageId, rows: 3 }));
    const approvals = req.approvals.length
      ? "approved so far by " + req.approvals.map((a) => a.id).join(", ") : "no approvals yet";
    const block = h("fieldset", { class: "request card", "data-request-id": rid },
      h("legend", {}, h("span", { class: "muted" }, `${index + 1}. `), req.action),
      req.description ? h("p", { class: "description" }, req.description) : null,
      h("ul", { class: "facts" },
        h("li", {}, `Asked by ${req.asked_by || "unknown"} at ${when(req.asked_at)}`),
        h("li", {}, deadlineNode(req.deadline)),
        h("li", { class: "quorum" }, `${quorumText(req)} (${approvals})`),
        h("li", {}, `Decided by: ${rolesText(req.roles)}`),
        req.edited ? h("li", {}, "These arguments were edited by a reviewer.") : null),
      argsTable(req.args, "Arguments"),
      req.original_args ? argsTable(req.original_args, "First proposed") : null,
      choices, editBox, messageBox);
    choices.addEventListener("change", () => {
      const type = choices.querySelector("input:checked").value;
      editBox.hidden = type !== "edit";
      messageBox.hidden = !(type === "reject" || type === "response");
      block.querySelector(".message-label").textContent =
        type === "response" ? "Your response to the agent" : "Reason for the agent";
      block.querySelector("textarea#" + CSS.escape(messageId)).required = type === "response";
      updateSubmit();
    });
    const refresh = () => {
      const { args, problems } = readEdit(editBox);
      const box = editBox.querySelector(".diff-box");
      box.replaceChildren(problems.length
        ? h("p", { class: "error" }, problems.join("; "))
        : renderDiff(diffArgs(req.args, args)));
    };
    editBox.addEventListener("input", refresh);
    editBox.addEventListener("change", refresh);
    refresh();
    return block;
  }

  function updateSubmit() {
    const form = document.getElementById("decide-form");
    if (!form || !state.batch) return;
    const blocks = [...form.querySelectorAll("fieldset.request")];
    const chosen = blocks.filter((b) => b.querySelector("input[type=radio]:checked")).length;
    if (blocks.length === 1 && blocks[0].dataset.kind) {
      document.getElementById("submit").textContent =
        blocks[0].dataset.kind === "answer" ? "Send answer" : "Resume";
      return;
    }
    const button = document.getElementById("submit");
    const n = blocks.length;
    button.textContent = n > 1 ? `Submit ${n} decisions together` : "Submit decision";
    document.getElementById("progress").textContent = n > 1
      ? `${chosen} of ${n} decided; all are sent together, and applied together or not at all.`
      : "";
  }

  function contextSection(ctx) {
    const items = (ctx.messages || []).map((m) => h("li", { class: "msg " + m.role },
      h("span", { class: "role" }, m.role + (m.name ? ` (${m.name})` : "")),
      m.content ? h("p", {}, m.content) : null,
      (m.tool_calls || []).map((c) => h("p", { class: "call" }, "proposes ",
        h("code", {}, `${c.name}(${json(c.args)})`)))));
    const values = ctx.values && Object.keys(ctx.values).length
      ? h("pre", { class: "values" }, JSON.stringify(ctx.values, null, 2)) : null;
    return h("section", { class: "context", "aria-labelledby": "context-h" },
      h("h2", { id: "context-h" }, "What led here"),
      items.length ? h("ol", { class: "conversation" }, items) : null,
      values,
      !items.length && !values ? h("p", { class: "muted" }, "The state is empty.") : null);
  }

  function historySection(history) {
    return h("section", { "aria-labelledby": "history-h" },
      h("h2", { id: "history-h" }, "Decisions so far"),
      history.length ? h("ul", { class: "history" }, history.map(decisionLine))
        : h("p", { class: "muted" }, "None yet."));
  }

  function decisionLine(d) {
    const who = (d.who && d.who.id) || "unknown";
    const said = d.message ? ` — “${d.message}”`
      : d.value !== null && d.value !== undefined ? ` — ${json(d.value)}` : "";
    return h("li", {}, h("strong", {}, who), ` ${d.decision} ${d.action} (${d.request_id})`,
      said, ` at ${when(d.at)}; ${d.status}`,
      d.via_deadline ? " (by the deadline)" : "");
  }

  async function viewDecide(threadId, requestId) {
    show("Decide", h("h1", {}, "Loading…"));
    let batch;
    try {
      batch = await api(`/approvals/threads/${encodeURIComponent(threadId)}/requests/` +
        encodeURIComponent(requestId));
    } catch (e) {
      if (e.status === 401) return;
      show("Not pending", h("nav", { class: "crumbs" }, h("a", { href: "#/" }, "← All pending approvals")),
        h("h1", {}, "Nothing to decide here"),
        h("p", { class: "error", role: "alert" }, e.message),
        h("p", {}, h("a", { href: `#/audit/${encodeURIComponent(threadId)}` }, "Read this thread's audit trail")));
      return;
    }
    state.batch = batch;
    const first = batch.requests[0];
    if (first && first.now) state.skew = new Date(first.now).getTime() - Date.now();
    const title = batch.requests.length > 1
      ? `Decide ${batch.requests.length} calls paused together`
      : first.kind === "answer" ? "Answer the graph"
      : first.kind === "resume" ? "Resume the graph" : `Decide: ${first.action}`;
    const form = h("form", { id: "decide-form", novalidate: true },
      batch.requests.map(requestBlock),
      batch.hidden ? h("p", { class: "muted" },
        `${batch.hidden} more call(s) paused with these wait for reviewers with other roles.`) : null,
      h("p", { id: "progress", class: "muted" }),
      h("div", { class: "actions" },
        h("button", { id: "submit", type: "submit", class: "primary" }, "Submit decision"),
        h("a", { href: "#/" }, "Cancel")),
      h("div", { id: "decide-error", class: "error", role: "alert" }));
    form.addEventListener("submit", (ev) => { ev.preventDefault(); submitBatch(form); });
    show(title,
      h("nav", { class: "crumbs" }, h("a", { href: "#/" }, "← All pending approvals"), " · ",
        h("a", { href: `#/audit/${encodeURIComponent(batch.thread_id)}` }, "Audit trail of this thread")),
      h("h1", {}, title),
      h("p", { class: "muted" }, `Thread ${batch.thread_id} · graph ${batch.graph_id} · you decide as `,
        h("strong", { id: "deciding-as" }, state.me.identity),
        ` (roles: ${state.me.roles.join(", ") || "none"})`),
      h("p", { id: "changed", class: "warning", role: "alert", hidden: true }),
      form,
      h("div", { id: "outcome", role: "status" }),
      contextSection(batch.context),
      historySection(batch.history));
    updateSubmit();
  }

  async function submitBatch(form) {
    const error = document.getElementById("decide-error");
    error.textContent = "";
    const answers = [];
    const problems = [];
    for (const block of form.querySelectorAll("fieldset.request")) {
      const rid = block.dataset.requestId;
      const req = state.batch.requests.find((r) => r.request_id === rid);
      if (req.kind === "answer" || req.kind === "resume") {
        answers.push(openAnswer(block, req, problems));
        continue;
      }
      const picked = block.querySelector("input[type=radio]:checked");
      if (!picked) { problems.push(`Choose a decision for ${req.action} (${rid}).`); continue; }
      const answer = { request_id: rid, digest: req.digest, type: picked.value };
      if (picked.value === "edit") {
        const { args, problems: bad } = readEdit(block.querySelector(".edit-panel"));
        if (bad.length) problems.push(`${req.action}: ${bad.join("; ")}`);
        answer.args = args;
      }
      if (picked.value === "reject" || picked.value === "response") {
        const text = block.querySelector("textarea[id^=message-]").value.trim();
        if (picked.value === "response" && !text) problems.push(`Write the response for ${req.action}.`);
        if (text) answer.message = text;
      }
      answers.push(answer);
    }
    if (problems.length) {
      error.textContent = problems.join(" ");
      return;
    }
    const button = document.getElementById("submit");
    button.disabled = true;
    button.textContent = "Submitting…";
    try {
      const result = await api(`/approvals/threads/${encodeURIComponent(state.batch.thread_id)}/decisions`,
        { method: "POST", body: JSON.stringify({ answers }) });
      for (const el of form.querySelectorAll("input, textarea, select, button")) el.disabled = true;
      const outcome = document.getElementById("outcome");
      outcome.replaceChildren(h("div", { class: "card success" },
        h("h2", { tabindex: "-1" }, "Decision recorded"),
        h("ul", {}, result.decisions.map(decisionLine)),
        h("p", {}, `The thread is now ${result.thread_status}. `,
          h("a", { href: "#/" }, "Back to the pending approvals"), " · ",
          h("a", { href: `#/audit/${encodeURIComponent(state.batch.thread_id)}` }, "Audit trail"))));
      outcome.querySelector("h2").focus();
      say("Decision recorded");
    } catch (e) {
      if (e.status === 401) return;
      const reason = e.body && e.body.reason;
      const final = ["overtaken", "expired", "busy"].includes(reason);
      error.replaceChildren(h("strong", {}, final ? "Refused: this decision was overtaken. "
        : "Refused. "), e.message, final ? h("span", {}, " ", h("a", { href: "#/" }, "Back to the list")) : "");
      error.dataset.reason = reason || "";
      if (final) {
        for (const el of form.querySelectorAll("input, textarea, select")) el.disabled = true;
      } else {
        button.disabled = false;
        updateSubmit();
      }
      error.tabIndex = -1;
      error.focus();
    }
  }

  // -- the audit trail -----------------------------------------------------------------

  function recordWhat(r) {
    if (r.event === "decision") {
      const parts = [`${r.decision} ${r.action} (${r.request_id})`];
      if (r.message) parts.push(`“${r.message}”`);
      if (r.value !== null && r.value !== undefined) parts.push(json(r.value));
      if (r.args_diff) {
        const c = r.args_diff.changed || {};
        for (const [k, v] of Object.entries(c)) parts.push(`${k}: ${json(v.from)} → ${json(v.to)}`);
        for (const [k, v] of Object.entries(r.args_diff.added || {})) parts.push(`+${k}: ${json(v)}`);
        for (const k of Object.keys(r.args_diff.removed || {})) parts.push(`-${k}`);
      }
      return parts.join(" · ");
    }
    if (r.event === "refused") return r.error || "refused";
    if (r.event === "update_state" || r.event === "command_update") {
      return `${r.as_node ? "as " + r.as_node + ": " : ""}${json(r.values)}`.slice(0, 300);
    }
    if (r.event === "resume") return json(r.value).slice(0, 300);
    return "";
  }

  async function viewAudit(threadId) {
    show("Audit", h("h1", {}, "Loading…"));
    let data;
    try {
      data = await api(`/approvals/threads/${encodeURIComponent(threadId)}/audit`);
    } catch (e) {
      if (e.status === 401) return;
      show("Audit", h("h1", {}, "Audit trail"), h("p", { class: "error", role: "alert" }, e.message));
      return;
    }
    const chain = data.verified
      ? h("p", { id: "chain", class: "chain ok", "data-verified": "true" },
        `✔ The hash chain verifies: ${data.records.length} record(s), none removed or altered.`)
      : h("p", { id: "chain", class: "chain bad", "data-verified": "false", role: "alert" },
        "✘ The hash chain does not verify: " + data.problem);
    const exportButton = h("button", { id: "export", type: "button" }, "Export as JSON Lines");
    exportButton.addEventListener("click", () => exportJsonl(threadId));
    const table = h("table", { class: "audit" },
      h("caption", {}, "Every request, decision and state change, oldest first"),
      h("thead", {}, h("tr", {}, ["#", "When", "Who", "Event", "What", "Status", "Digest"].map(
        (t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, data.records.map((r) => h("tr", { class: "ev-" + r.event },
        h("td", {}, r.seq),
        h("td", {}, when(r.at)),
        h("td", {}, (r.who && r.who.id) || "—"),
        h("td", {}, r.event + (r.via_deadline ? " (deadline)" : "")),
        h("td", { class: "what" }, recordWhat(r)),
        h("td", {}, r.status ? r.status + (r.needed ? ` (${r.approvals} of ${r.needed})` : "") : ""),
        h("td", {}, h("code", { title: r.digest || r.hash || "" },
          String(r.digest || "").replace("sha256:", "").slice(0, 10)))))));
    show("Audit trail",
      h("nav", { class: "crumbs" }, h("a", { href: "#/" }, "← All pending approvals")),
      h("h1", {}, "Audit trail"),
      h("p", { class: "muted" }, `Thread ${data.thread_id} · graph ${data.graph_id || "?"}`),
      chain,
      h("div", { class: "actions" }, exportButton),
      h("div", { class: "scroll" }, data.records.length ? table
        : h("p", { class: "muted" }, "No records yet.")));
  }

  async function exportJsonl(threadId) {
    const res = await fetch(`/approvals/threads/${encodeURIComponent(threadId)}/audit.jsonl`,
      { headers: headers() });
    if (!res.ok) {
      say("Export failed: HTTP " + res.status);
      return;
    }
    const blob = await res.blob();
    const a = h("a", { href: URL.createObjectURL(blob), download: `audit-${threadId}.jsonl` });
    document.body.append(a);
    a.click();
    a.remove();
    say("Audit trail exported");
  }

  // -- start ---------------------------------------------------------------------------

  document.getElementById("signout").addEventListener("click", () => signOut(""));
  window.addEventListener("hashchange", route);
  state.timer = window.setInterval(tickDeadlines, 1000);
  route();
})();

// Ward console. Plain JavaScript, no build step, no dependencies.
//
// Security rule for this file: finding data is attacker-controlled (script contents, args,
// paths, labels, names). It is only ever put into the page as text (document.createTextNode /
// textContent through h()), never through innerHTML, insertAdjacentHTML, document.write or
// attribute strings. Links are built only from validated pieces (hex hashes, ATT&CK ids, our
// own finding ids). The server's Content-Security-Policy forbids inline script and eval.
"use strict";

(function () {
  const TOKEN_KEY = "ward.token";
  const SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW"];
  const STATES = ["ACTIVE", "INACTIVE"];
  const app = document.getElementById("app");
  let categories = null; // from /v1/categories
  let techniqueNames = {}; // "T1059.004" -> "UNIX_SHELL"
  let pageTokens = [""]; // list pagination stack
  let lastListKey = "";
  let navSeq = 0;

  // ---- DOM helpers (text only) ----------------------------------------------------------

  const SAFE_ATTRS = new Set([
    "class", "id", "title", "type", "role", "for", "value", "placeholder", "name",
    "aria-label", "aria-selected", "aria-controls", "tabindex", "colspan", "datetime",
    "autocomplete", "spellcheck", "rel", "target", "disabled", "hidden",
  ]);

  // h(tag, attrs, ...children): children are nodes, arrays or values shown as text.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === "href") {
          el.setAttribute("href", safeHref(v));
        } else if (k.startsWith("data-")) {
          el.setAttribute(k, String(v));
        } else if (k === "onclick") {
          el.addEventListener("click", v);
        } else if (k === "onsubmit") {
          el.addEventListener("submit", v);
        } else if (k === "onchange") {
          el.addEventListener("change", v);
        } else if (SAFE_ATTRS.has(k)) {
          el.setAttribute(k, v === true ? "" : String(v));
        } else {
          throw new Error("attribute not allowed: " + k);
        }
      }
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      if (Array.isArray(c)) append(el, c);
      else if (c instanceof Node) el.appendChild(c);
      else el.appendChild(textOf(String(c)));
    }
  }

  // Characters that are shown, not obeyed: C0 controls but tab, newline and CR, DEL, C1
  // controls, the bidirectional formatting characters (U+061C, U+200E/F, U+202A-202E,
  // U+2066-2069: "evil\u202Egnp.exe" would read "evilexe.png") and the invisible ones
  // (U+200B-200D, U+2060, U+FEFF). The same list as the CLI's (ward/src/display.rs).
  const HIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u061C\u200B-\u200F\u202A-\u202E\u2060\u2066-\u2069\uFEFF]/g;

  // Text as nodes: plain text nodes, with each hidden character replaced by a marked
  // escape (<span class="esc">\u202E</span>), itself a text node.
  const HAS_HIDDEN = new RegExp(HIDDEN.source); // not global: test() keeps no state

  function textOf(s) {
    if (!HAS_HIDDEN.test(s)) return document.createTextNode(s);
    const frag = document.createDocumentFragment();
    let last = 0;
    for (const m of s.matchAll(HIDDEN)) {
      if (m.index > last) frag.appendChild(document.createTextNode(s.slice(last, m.index)));
      const hex = m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");
      const esc = document.createElement("span");
      esc.className = "esc";
      esc.title = "hidden character U+" + hex + " shown as an escape";
      esc.appendChild(document.createTextNode("\\u" + hex));
      frag.appendChild(esc);
      last = m.index + m[0].length;
    }
    if (last < s.length) frag.appendChild(document.createTextNode(s.slice(last)));
    return frag;
  }

  // Only our own hash routes and https links to the two reference sites we build.
  function safeHref(v) {
    const s = String(v);
    if (s.startsWith("#/")) return s;
    if (/^https:\/\/www\.virustotal\.com\/gui\/(file|ip-address|domain)\/[A-Za-z0-9.:-]+$/.test(s)) return s;
    if (/^https:\/\/attack\.mitre\.org\/(techniques|tactics)\/[A-Z0-9/]+\/$/.test(s)) return s;
    if (/^https:\/\/[A-Za-z0-9.-]+(:\d+)?(\/[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]*)?$/.test(s)) return s;
    return "#/";
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  function extLink(href, text) {
    return h("a", { href, target: "_blank", rel: "noopener noreferrer", class: "ext" }, text);
  }

  // ---- token and API --------------------------------------------------------------------

  function getToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }
  function setToken(t) {
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage disabled */ }
    renderTokenButton();
  }

  // `ward serve` prints http://127.0.0.1:8080/#token=...: keep it for this tab, then remove it
  // from the address bar and history.
  function takeTokenFromFragment() {
    const m = /^#token=([A-Za-z0-9._~-]{16,256})$/.exec(location.hash);
    if (m) {
      setToken(m[1]);
      history.replaceState(null, "", location.pathname + "#/");
    }
  }

  class ApiError extends Error {
    constructor(status, body) {
      const e = (body && body.error) || {};
      super(e.message || ("HTTP " + status));
      this.status = status;
      this.position = e.position;
      this.field = e.field;
    }
  }

  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    const t = getToken();
    if (t) headers["Authorization"] = "Bearer " + t;
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      const err = new ApiError(r.status, data);
      if (r.status === 401) showBanner("This server needs an API token. ", tokenLink("Enter a token"));
      throw err;
    }
    return data;
  }

  function tokenLink(text) {
    return h("button", { type: "button", class: "linklike", onclick: openTokenDialog }, text);
  }

  // ---- chrome -----------------------------------------------------------------------------

  function showBanner(...parts) {
    const b = document.getElementById("banner");
    clear(b);
    append(b, parts);
    b.classList.remove("hidden");
  }
  function hideBanner() {
    document.getElementById("banner").classList.add("hidden");
  }

  function renderTokenButton() {
    const b = document.getElementById("token-button");
    clear(b);
    append(b, getToken() ? [h("span", { class: "dot dot-ok" }), "Token set"] : [h("span", { class: "dot" }), "No token"]);
  }

  function openTokenDialog() {
    const d = document.getElementById("token-dialog");
    document.getElementById("token-input").value = "";
    if (typeof d.showModal === "function") d.showModal();
  }

  function setupTokenDialog() {
    const d = document.getElementById("token-dialog");
    document.getElementById("token-button").addEventListener("click", openTokenDialog);
    document.getElementById("token-cancel").addEventListener("click", () => d.close());
    document.getElementById("token-clear").addEventListener("click", () => { setToken(""); d.close(); });
    document.getElementById("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = document.getElementById("token-input").value.trim();
      if (v) setToken(v);
      d.close();
      hideBanner();
      route();
    });
  }

  function setCrumbs(...items) {
    const c = document.getElementById("crumbs");
    clear(c);
    items.forEach((it, i) => {
      if (i > 0) c.appendChild(h("span", { class: "sep" }, "/"));
      c.appendChild(it.href ? h("a", { href: it.href }, it.text) : h("span", { class: "here" }, it.text));
    });
  }

  // ---- formatting -------------------------------------------------------------------------

  function sevBadge(s) {
    const k = SEVERITIES.includes(s) ? s.toLowerCase() : "unknown";
    return h("span", { class: "sev sev-" + k, title: "Severity " + s }, h("span", { class: "sev-dot" }), s);
  }
  function stateBadge(s) {
    return h("span", { class: "chip " + (s === "ACTIVE" ? "chip-active" : "chip-inactive") }, s === "ACTIVE" ? "Active" : "Inactive");
  }
  function muteBadge(m) {
    return m === "MUTED" ? h("span", { class: "chip chip-muted" }, "Muted") : null;
  }

  function fmtTime(s) {
    if (!s) return "";
    const d = new Date(s);
    if (isNaN(d.getTime())) return String(s);
    const p = (n, w) => String(n).padStart(w || 2, "0");
    return d.getUTCFullYear() + "-" + p(d.getUTCMonth() + 1) + "-" + p(d.getUTCDate()) + " " +
      p(d.getUTCHours()) + ":" + p(d.getUTCMinutes()) + ":" + p(d.getUTCSeconds()) + "." + p(d.getUTCMilliseconds(), 3) + " UTC";
  }
  function timeEl(s) {
    return h("time", { datetime: s, title: String(s || "") }, fmtTime(s));
  }

  // "12 s ago", "3 min ago", "5 h ago", "2 d ago" (this browser's clock against the time).
  function fmtAgo(s) {
    const t = new Date(s).getTime();
    if (isNaN(t)) return "";
    const ms = Date.now() - t;
    if (ms < 1000) return "just now";
    if (ms < 60000) return Math.floor(ms / 1000) + " s ago";
    if (ms < 3600000) return Math.floor(ms / 60000) + " min ago";
    if (ms < 86400000) return Math.floor(ms / 3600000) + " h ago";
    return Math.floor(ms / 86400000) + " d ago";
  }

  function src(f, k) {
    const v = f.sourceProperties && f.sourceProperties[k];
    return v === undefined || v === null ? undefined : v;
  }

  function idOf(f) {
    const n = String(f.name || "");
    return n.slice(n.lastIndexOf("/") + 1);
  }

  function findingHref(f, tab) {
    return "#/findings/" + encodeURIComponent(idOf(f)) + (tab ? "?tab=" + tab : "");
  }

  // What the console shows of a finding's resource: the API's `resource` (SCC's
  // ListFindingsResult.resource: type, display name, cluster, project, node) and the
  // finding's own container/pod details.
  function resourceOf(f, res) {
    const pod = f.kubernetes && f.kubernetes.pods && f.kubernetes.pods[0];
    const node = f.kubernetes && f.kubernetes.nodes && f.kubernetes.nodes[0];
    const c = f.containers && f.containers[0];
    res = res || {};
    return {
      type: res.type,
      displayName: res.display_name,
      cluster: res.cluster || f.cluster,
      project: res.project_display_name || f.projectDisplayName,
      container: (c && c.name) || src(f, "Container_Name"),
      image: (c && c.uri) || src(f, "Container_Image_Uri"),
      imageId: c && c.imageId,
      pod: (pod && pod.name) || src(f, "Pod_Name"),
      namespace: (pod && pod.ns) || src(f, "Pod_Namespace"),
      node: res.node || (node && node.name) || src(f, "VM_Instance_Name"),
      containerId: src(f, "Container_Id"),
      labels: (c && c.labels) || [],
      podLabels: (pod && pod.labels) || [],
    };
  }

  // ---- routing ----------------------------------------------------------------------------

  function parseHash() {
    const raw = location.hash.replace(/^#/, "") || "/";
    const qi = raw.indexOf("?");
    const path = qi >= 0 ? raw.slice(0, qi) : raw;
    const params = new URLSearchParams(qi >= 0 ? raw.slice(qi + 1) : "");
    return { path, params };
  }

  function route() {
    const { path, params } = parseHash();
    const seq = ++navSeq;
    const m = /^\/findings\/([^/]+)$/.exec(path);
    document.body.removeAttribute("data-ready");
    setNav(path === "/nodes" ? "nodes" : "findings");
    if (m) {
      showFinding(decodeURIComponent(m[1]), params.get("tab") === "json" ? "json" : "summary", seq);
    } else if (path === "/nodes") {
      showNodes(params, seq);
    } else {
      showList(params, seq);
    }
  }

  function setNav(which) {
    for (const k of ["findings", "nodes"]) {
      const a = document.getElementById("nav-" + k);
      if (a) a.classList.toggle("on", k === which);
    }
  }

  // ---- node registry ----------------------------------------------------------------------

  // The collector's node registry, `GET /v1/nodes` ({nodes, staleAfterSeconds}); null where
  // there is none (`ward agent --serve` answers 404) or it cannot be read: the console then
  // works from the findings alone, as before.
  let noRegistry = false; // a 404 once: this server has none (it will not grow one)
  async function fetchNodes() {
    if (noRegistry) return null;
    try {
      const r = await api("GET", "/v1/nodes");
      return r && Array.isArray(r.nodes) ? r : null;
    } catch (e) {
      if (e.status === 404) noRegistry = true;
      return null;
    }
  }

  function staleText(reg) {
    const s = Number(reg && reg.staleAfterSeconds) || 0;
    return s ? "no batch or heartbeat for more than " + s + " s" : "not seen recently";
  }

  // What a node chip's title says about the node's health.
  function nodeTitle(n, reg) {
    const parts = [n.lastSeenTime ? "last seen " + fmtTime(n.lastSeenTime) + " (" + fmtAgo(n.lastSeenTime) + ")" : "never seen"];
    if (n.stale) parts.push("stale: " + staleText(reg));
    if (n.revoked) parts.push("revoked");
    if (n.agentVersion) parts.push("agent " + n.agentVersion);
    return parts.join(" · ");
  }

  function listHashFor(over) {
    return listHash(Object.assign(listState(new URLSearchParams()), over));
  }

  // ---- list page --------------------------------------------------------------------------

  function listState(params) {
    return {
      q: params.get("q") || "",
      severity: params.get("severity") || "",
      state: params.get("state") || "",
      category: params.get("category") || "",
      node: params.get("node") || "",
      cluster: params.get("cluster") || "",
      page: Math.max(0, parseInt(params.get("page") || "0", 10) || 0),
      size: [25, 50, 100, 200].includes(parseInt(params.get("size"), 10)) ? parseInt(params.get("size"), 10) : 50,
    };
  }

  function listHash(st) {
    const p = new URLSearchParams();
    if (st.q) p.set("q", st.q);
    if (st.severity) p.set("severity", st.severity);
    if (st.state) p.set("state", st.state);
    if (st.category) p.set("category", st.category);
    if (st.cluster) p.set("cluster", st.cluster);
    if (st.node) p.set("node", st.node);
    if (st.size !== 50) p.set("size", String(st.size));
    if (st.page) p.set("page", String(st.page));
    const s = p.toString();
    return "#/" + (s ? "?" + s : "");
  }

  // A filter value as a quoted string of the grammar (only \" and \\ are escapes).
  function quoted(v) {
    return '"' + String(v).replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"';
  }

  function hasQuick(st) {
    return !!(st.severity || st.state || st.category || st.cluster || st.node);
  }

  // The filter sent to the API: the free text (parenthesised) AND the quick filters.
  function effectiveFilter(st) {
    const parts = [];
    if (st.q.trim()) parts.push(hasQuick(st) ? "(" + st.q.trim() + ")" : st.q.trim());
    if (st.severity) parts.push("severity=" + st.severity);
    if (st.state) parts.push("state=" + st.state);
    if (st.category) parts.push("category=" + st.category);
    if (st.cluster) parts.push("resource.cluster=" + quoted(st.cluster));
    if (st.node) parts.push("resource.node=" + quoted(st.node));
    return parts.join(" AND ");
  }

  // Chips for the clusters and nodes of the findings on this page (and the selected one),
  // each narrowing the list to it; clicking the selected chip lifts the filter. With the
  // collector's node registry (`reg`, GET /v1/nodes) the node chips are every enrolled node,
  // also those without findings here, each titled with its last-seen time and marked stale
  // when the registry says so (docs/api.md "Fleet console").
  function fleetGroup(label, key, results, st, reg) {
    const values = new Set();
    const known = new Map();
    if (key === "node" && reg) {
      for (const n of reg.nodes) {
        if (n && n.name) { values.add(String(n.name)); known.set(String(n.name), n); }
      }
    }
    for (const r of results) {
      const v = key === "node" ? (r.resource && r.resource.node) : (r.resource && r.resource.cluster);
      if (v) values.add(String(v));
    }
    if (st[key]) values.add(st[key]);
    if (!values.size) return null;
    const sorted = Array.from(values).sort();
    return h("div", { class: "qgroup", id: "fleet-" + key, "data-source": key === "node" && reg ? "registry" : "findings" },
      h("span", { class: "qlabel" }, label),
      sorted.map((v) => {
        const on = st[key] === v;
        const n = known.get(v);
        let title = (on ? "Show every " : "Only ") + label.toLowerCase() + " " + v;
        if (n) title += " · " + nodeTitle(n, reg);
        else if (key === "node" && reg) title += " · not enrolled with this collector";
        return h("button", {
          type: "button",
          class: "qf qf-fleet" + (on ? " on" : "") + (n && n.stale ? " qf-stale" : "") + (n && n.revoked ? " qf-revoked" : ""),
          "data-qf": key + "=" + v, "data-stale": n ? String(!!n.stale) : null, title,
          onclick: () => { const x = Object.assign({}, st, { page: 0 }); x[key] = on ? "" : v; location.hash = listHash(x); },
        }, v);
      }));
  }

  function quickGroup(label, key, values, st, labels) {
    const mk = (v, text) => {
      const on = st[key] === v;
      return h("button", {
        type: "button", class: "qf" + (on ? " on" : "") + (v && key === "severity" ? " qf-" + v.toLowerCase() : ""),
        "data-qf": key + "=" + v,
        onclick: () => { const n = Object.assign({}, st, { page: 0 }); n[key] = on ? "" : v; location.hash = listHash(n); },
      }, text);
    };
    return h("div", { class: "qgroup" }, h("span", { class: "qlabel" }, label),
      values.map((v) => mk(v, labels ? labels[v] : v.charAt(0) + v.slice(1).toLowerCase())));
  }

  async function ensureCategories() {
    if (categories) return categories;
    try {
      const r = await api("GET", "/v1/categories");
      categories = r.categories || [];
      for (const c of categories) for (const t of c.techniques || []) techniqueNames[t.id] = t.name;
    } catch (e) {
      categories = [];
    }
    return categories;
  }

  async function showList(params, seq) {
    const st = listState(params);
    setCrumbs({ text: "Findings" });
    document.title = "Ward · Findings";
    const filter = effectiveFilter(st);
    const key = filter + "|" + st.size;
    if (key !== lastListKey) { pageTokens = [""]; lastListKey = key; }
    const page = Math.min(st.page, pageTokens.length - 1);

    const input = h("input", {
      id: "filter-input", class: "filter-input", type: "text", value: st.q, spellcheck: "false",
      autocomplete: "off", "aria-label": "Filter",
      placeholder: 'Filter, e.g. category="Reverse Shell" AND severity=CRITICAL AND containerName:web',
    });
    const form = h("form", {
      class: "filterbar", id: "filter-form",
      onsubmit: (ev) => { ev.preventDefault(); location.hash = listHash(Object.assign({}, st, { q: input.value, page: 0 })); },
    }, h("span", { class: "filter-icon" }, "Filter"), input,
      h("button", { type: "submit", class: "btn btn-primary", id: "filter-apply" }, "Apply"),
      st.q || hasQuick(st)
        ? h("a", { class: "btn", href: "#/", id: "filter-clear" }, "Clear") : null);
    const errBox = h("div", { class: "filter-error hidden", id: "filter-error", role: "alert" });

    const cats = await ensureCategories();
    if (seq !== navSeq) return;
    const catSelect = h("select", {
      class: "select", id: "category-select", "aria-label": "Category",
      onchange: (ev) => { location.hash = listHash(Object.assign({}, st, { category: ev.target.value, page: 0 })); },
    }, h("option", { value: "" }, "All categories"),
      cats.map((c) => {
        const o = h("option", { value: c.apiName }, c.category);
        if (c.apiName === st.category) o.selected = true;
        return o;
      }));
    const quick = h("div", { class: "quickbar" },
      quickGroup("Severity", "severity", SEVERITIES, st),
      quickGroup("State", "state", STATES, st),
      h("div", { class: "qgroup" }, h("span", { class: "qlabel" }, "Category"), catSelect));
    const fleetBar = h("div", { class: "quickbar fleetbar", id: "fleet-bar" });

    const summary = h("div", { class: "listmeta", id: "list-meta" }, "Loading…");
    const tableWrap = h("div", { class: "tablewrap" });
    const pager = h("div", { class: "pager" });
    clear(app);
    app.appendChild(h("section", { class: "page page-list" },
      h("div", { class: "pagehead" }, h("h1", null, "Findings"),
        h("p", { class: "muted" }, "Threats detected in containers and pods. The filter uses the SCC-style grammar of docs/filter-grammar.md, e.g. ",
          h("code", null, "severity>=HIGH state=ACTIVE -mute=MUTED"), ".")),
      form, errBox, quick, fleetBar, summary, tableWrap, pager));

    const regP = fetchNodes();
    let data;
    try {
      const q = new URLSearchParams();
      if (filter) q.set("filter", filter);
      q.set("pageSize", String(st.size));
      if (pageTokens[page]) q.set("pageToken", pageTokens[page]);
      data = await api("GET", "/v1/findings?" + q.toString());
    } catch (e) {
      if (seq !== navSeq) return;
      summary.textContent = "";
      showFilterError(errBox, e, filter, st);
      markReady("list-error");
      return;
    }
    if (seq !== navSeq) return;
    const results = data.listFindingsResults || [];
    const findings = results.map((r) => r.finding);
    const reg = await regP;
    if (seq !== navSeq) return;
    append(fleetBar, [fleetGroup("Cluster", "cluster", results, st), fleetGroup("Node", "node", results, st, reg)]);
    if (!fleetBar.firstChild) fleetBar.classList.add("hidden");
    if (data.nextPageToken) pageTokens[page + 1] = data.nextPageToken;
    clear(summary);
    const total = data.totalSize;
    const from = page * st.size + (findings.length ? 1 : 0);
    append(summary, [total !== undefined
      ? [h("strong", { id: "total-size" }, String(total)), total === 1 ? " finding" : " findings",
        findings.length ? " · showing " + from + "–" + (page * st.size + findings.length) : ""]
      : [String(findings.length), " findings"],
    filter ? [" · filter ", h("code", { class: "effective-filter" }, filter)] : null]);

    tableWrap.appendChild(findingsTable(results));
    pager.appendChild(h("button", {
      type: "button", class: "btn", id: "prev-page", disabled: page === 0,
      onclick: () => { location.hash = listHash(Object.assign({}, st, { page: page - 1 })); },
    }, "‹ Previous"));
    pager.appendChild(h("span", { class: "muted" }, "Page " + (page + 1)));
    pager.appendChild(h("button", {
      type: "button", class: "btn", id: "next-page", disabled: !data.nextPageToken,
      onclick: () => { location.hash = listHash(Object.assign({}, st, { page: page + 1 })); },
    }, "Next ›"));
    const sizeSel = h("select", {
      class: "select", "aria-label": "Rows per page",
      onchange: (ev) => { location.hash = listHash(Object.assign({}, st, { size: parseInt(ev.target.value, 10), page: 0 })); },
    }, [25, 50, 100, 200].map((n) => { const o = h("option", { value: n }, n + " rows"); if (n === st.size) o.selected = true; return o; }));
    pager.appendChild(sizeSel);
    markReady("list");
  }

  function showFilterError(box, e, filter, st) {
    clear(box);
    box.classList.remove("hidden");
    if (e.field === "filter" && typeof e.position === "number") {
      // Show the filter with a caret under the error. Positions refer to the filter sent;
      // with quick filters the free text sits after "(" (offset 1): report it in the text
      // the user typed.
      const q = st.q.trim();
      const off = q && filter !== q ? 1 : 0;
      const inText = q && e.position >= off && e.position <= off + q.length;
      const text = inText ? q : filter;
      const pos = inText ? e.position - off : e.position;
      box.appendChild(h("div", { class: "err-title" }, String(e.message).replace(/column \d+/, "column " + (pos + 1))));
      const chars = Array.from(text);
      box.appendChild(h("div", { class: "muted" }, inText || !q ? "" : "(in the quick filters)"));
      box.appendChild(h("pre", { class: "caret" },
        chars.slice(0, pos).join(""),
        h("mark", null, chars[pos] !== undefined ? chars[pos] : " "),
        chars.slice(pos + 1).join(""), "\n", " ".repeat(pos) + "^"));
    } else {
      box.appendChild(h("div", { class: "err-title" }, e.message));
    }
  }

  function findingsTable(results) {
    if (!results.length) {
      return h("div", { class: "empty", id: "empty" }, h("strong", null, "No findings match."),
        h("span", { class: "muted" }, " Change the filter or the quick filters."));
    }
    const head = h("thead", null, h("tr", null,
      h("th", { class: "c-sev" }, "Severity"), h("th", null, "Category"), h("th", null, "Resource"),
      h("th", { class: "c-time" }, "Event time"), h("th", { class: "c-num" }, "Count"), h("th", { class: "c-state" }, "State")));
    const body = h("tbody", null, results.map((item) => {
      const f = item.finding;
      const r = resourceOf(f, item.resource);
      const href = findingHref(f);
      const tr = h("tr", { class: "row" + (f.state === "INACTIVE" ? " row-inactive" : ""), "data-id": idOf(f) },
        h("td", { class: "c-sev" }, sevBadge(f.severity)),
        h("td", { class: "c-cat" }, h("a", { href, class: "cat-link" }, f.category),
          h("div", { class: "sub mono" }, idOf(f))),
        h("td", { class: "c-res" },
          h("div", null, r.container ? h("span", { class: "res-main" }, r.container) : h("span", { class: "muted" }, "—"),
            r.pod ? h("span", { class: "muted" }, " in pod ", h("span", { class: "res-pod" }, r.pod)) : null),
          h("div", { class: "sub" }, [r.cluster ? "cluster " + r.cluster : null, r.namespace ? "ns " + r.namespace : null,
            r.node ? "node " + r.node : null, r.image || null]
            .filter(Boolean).join(" · "))),
        h("td", { class: "c-time" }, timeEl(f.eventTime)),
        h("td", { class: "c-num" }, String(src(f, "Count") || 1)),
        h("td", { class: "c-state" }, stateBadge(f.state), " ", muteBadge(f.mute)));
      tr.addEventListener("click", (ev) => {
        if (ev.target.closest("a")) return;
        location.hash = href;
      });
      return tr;
    }));
    return h("table", { class: "grid", id: "findings-table" }, head, body);
  }

  function markReady(what) {
    document.body.setAttribute("data-ready", what);
    if (what === "list" && !window.__wardListMarked) {
      window.__wardListMarked = true;
      try { performance.mark("ward-list-rendered"); } catch (e) { /* old browser */ }
    }
  }

  // ---- nodes page -------------------------------------------------------------------------

  // A health counter of the summary the node's agent sends (docs/api.md "Fleet console").
  function counter(health, k) {
    const v = health && health[k];
    if (v === undefined || v === null) return h("span", { class: "muted" }, "—");
    return h("span", { class: typeof v === "number" && v > 0 ? "nonzero" : null }, String(v));
  }

  async function showNodes(params, seq) {
    setCrumbs({ text: "Nodes" });
    document.title = "Ward · Nodes";
    const want = params.get("node") || "";
    clear(app);
    app.appendChild(h("p", { class: "muted pad" }, "Loading nodes…"));
    let reg;
    try {
      reg = await api("GET", "/v1/nodes");
    } catch (e) {
      if (seq !== navSeq) return;
      clear(app);
      const none = e.status === 404;
      app.appendChild(h("section", { class: "page page-nodes" },
        h("div", { class: "pagehead" }, h("h1", null, "Nodes")),
        h("div", { class: none ? "empty" : "errorbox", id: "nodes-none" },
          none ? [h("strong", null, "No node registry here."),
            h("span", { class: "muted" }, " This server serves one node's findings (ward agent --serve); a collector (ward serve) lists the nodes enrolled with it.")]
            : [h("strong", null, "Could not load the nodes"), h("div", null, e.message)]),
        h("a", { href: "#/", class: "btn" }, "‹ Findings")));
      markReady(none ? "nodes-none" : "nodes-error");
      return;
    }
    if (seq !== navSeq) return;
    const nodes = (reg && Array.isArray(reg.nodes) ? reg.nodes : []).filter((n) => n && n.name);
    const stale = nodes.filter((n) => n.stale && !n.revoked).length;
    const head = h("thead", null, h("tr", null,
      h("th", null, "Node"), h("th", null, "Cluster"), h("th", null, "Project"), h("th", null, "Agent"),
      h("th", { class: "c-time" }, "Last seen"), h("th", { class: "c-num", title: "health kernel_drops: records the kernel could not put in the ring buffer" }, "Ring-buffer drops"),
      h("th", { class: "c-num", title: "health outbox_dropped: findings dropped from the node's full outbox" }, "Outbox drops"),
      h("th", null, "Status"), h("th", null, "")));
    const body = h("tbody", null, nodes.map((n) => {
      const name = String(n.name);
      const href = listHashFor({ node: name });
      const status = n.revoked ? h("span", { class: "chip chip-revoked" }, "Revoked")
        : n.stale ? h("span", { class: "chip chip-stale", title: "stale: " + staleText(reg) }, "Stale")
          : h("span", { class: "chip chip-active" }, "Reporting");
      return h("tr", {
        class: "node-row" + (n.stale ? " node-stale" : "") + (n.revoked ? " node-revoked" : "") + (name === want ? " on" : ""),
        "data-node": name, "data-stale": String(!!n.stale), "data-revoked": String(!!n.revoked),
      },
        h("td", { class: "c-node" }, h("a", { href, class: "node-link", title: "Findings of node " + name }, name),
          h("div", { class: "sub" }, "enrolled ", timeEl(n.createTime))),
        h("td", { class: "c-cluster" }, n.cluster ? String(n.cluster) : h("span", { class: "muted" }, "—")),
        h("td", { class: "c-project" }, n.project ? String(n.project) : h("span", { class: "muted" }, "—")),
        h("td", { class: "c-agent mono" }, n.agentVersion ? String(n.agentVersion) : h("span", { class: "muted" }, "—")),
        h("td", { class: "c-time c-seen" }, n.lastSeenTime
          ? [h("span", { class: "ago" }, fmtAgo(n.lastSeenTime)), h("div", { class: "sub" }, timeEl(n.lastSeenTime))]
          : h("span", { class: "muted" }, "never")),
        h("td", { class: "c-num drops-ring" }, counter(n.health, "kernel_drops")),
        h("td", { class: "c-num drops-outbox" }, counter(n.health, "outbox_dropped")),
        h("td", { class: "c-status" }, status),
        h("td", { class: "c-findings" }, h("a", { href, class: "findings-link" }, "Findings ›")));
    }));
    clear(app);
    app.appendChild(h("section", { class: "page page-nodes" },
      h("div", { class: "pagehead" }, h("h1", null, "Nodes"),
        h("p", { class: "muted" }, "Agents enrolled with this collector, with the health summary of their last batch or heartbeat.")),
      h("div", { class: "listmeta", id: "nodes-meta" },
        h("strong", { id: "nodes-total" }, String(nodes.length)), nodes.length === 1 ? " node" : " nodes",
        " · ", h("strong", { id: "nodes-stale" }, String(stale)), " stale (", staleText(reg), ")"),
      nodes.length
        ? h("div", { class: "tablewrap" }, h("table", { class: "grid", id: "nodes-table" }, head, body))
        : h("div", { class: "empty", id: "nodes-empty" }, h("strong", null, "No node has enrolled yet."),
          h("span", { class: "muted" }, " Agents enroll with their central output (docs/fleet.md)."))));
    const sel = want && document.querySelector("#nodes-table tr.on");
    if (sel && sel.scrollIntoView) sel.scrollIntoView({ block: "center" });
    markReady("nodes");
  }

  // ---- finding page -----------------------------------------------------------------------

  async function showFinding(id, tab, seq) {
    setCrumbs({ text: "Findings", href: "#/" }, { text: id });
    clear(app);
    app.appendChild(h("p", { class: "muted pad" }, "Loading finding…"));
    let got;
    try {
      await ensureCategories();
      got = await api("GET", "/v1/findings/" + encodeURIComponent(id));
    } catch (e) {
      if (seq !== navSeq) return;
      clear(app);
      app.appendChild(h("div", { class: "page" }, h("div", { class: "errorbox" },
        h("strong", null, e.status === 404 ? "Finding not found" : "Could not load the finding"),
        h("div", null, e.message)), h("a", { href: "#/", class: "btn" }, "‹ Back to findings")));
      markReady("finding-error");
      return;
    }
    if (seq !== navSeq) return;
    document.title = "Ward · " + got.finding.category;
    renderFinding(got.finding, got.resource, tab, seq);
  }

  // `res` is the API's resource of the finding (`{finding, resource}` of a get).
  function renderFinding(f, res, tab, seq) {
    const r = resourceOf(f, res);
    const actions = h("div", { class: "actions" },
      h("button", {
        type: "button", class: "btn", id: "btn-state",
        onclick: () => act(f, res, "setState", { state: f.state === "ACTIVE" ? "INACTIVE" : "ACTIVE" }, tab),
      }, f.state === "ACTIVE" ? "Mark inactive" : "Mark active"),
      h("button", {
        type: "button", class: "btn", id: "btn-mute",
        onclick: () => act(f, res, "setMute", { mute: f.mute === "MUTED" ? "UNMUTED" : "MUTED" }, tab),
      }, f.mute === "MUTED" ? "Unmute" : "Mute"));
    const head = h("div", { class: "fhead" },
      h("div", { class: "fhead-main" },
        h("div", { class: "fhead-badges" }, sevBadge(f.severity), stateBadge(f.state), muteBadge(f.mute),
          h("span", { class: "chip" }, f.findingClass || "THREAT")),
        h("h1", { id: "finding-title" }, f.category),
        h("div", { class: "fmeta" },
          h("span", null, "Event ", timeEl(f.eventTime)),
          h("span", null, "Created ", timeEl(f.createTime)),
          h("span", null, "Count ", h("strong", null, String(src(f, "Count") || 1))),
          r.container ? h("span", null, "Container ", h("strong", null, r.container)) : null)),
      actions);
    const actionMsg = h("div", { class: "action-msg hidden", id: "action-msg", role: "status" });

    const tabs = h("div", { class: "tabs", role: "tablist" },
      tabButton("summary", "Summary", tab, f), tabButton("json", "JSON", tab, f));
    const body = h("div", { class: "tabbody", id: "tab-" + tab, role: "tabpanel" });
    if (tab === "json") body.appendChild(jsonTab(f, res)); else body.appendChild(summaryTab(f, r, seq));
    clear(app);
    app.appendChild(h("section", { class: "page page-finding" },
      h("a", { href: "#/", class: "back" }, "‹ All findings"), head, actionMsg, tabs, body));
    if (tab === "json") markReady("finding-json");
  }

  function tabButton(key, label, current, f) {
    return h("a", {
      href: findingHref(f, key === "json" ? "json" : "summary"), role: "tab", id: "tab-button-" + key,
      class: "tab" + (key === current ? " on" : ""), "aria-selected": key === current ? "true" : "false",
    }, label);
  }

  async function act(f, res, verb, body, tab) {
    const msg = document.getElementById("action-msg");
    if (!getToken()) {
      msg.classList.remove("hidden");
      clear(msg);
      append(msg, ["Changing a finding needs a write token. ", tokenLink("Enter a token"), "."]);
      return;
    }
    try {
      const updated = await api("POST", "/v1/findings/" + encodeURIComponent(idOf(f)) + ":" + verb, body);
      // A state or mute change leaves the resource as it was.
      renderFinding(updated, res, tab, navSeq);
      const m = document.getElementById("action-msg");
      m.classList.remove("hidden");
      m.classList.add("ok");
      m.textContent = verb === "setState" ? "State set to " + updated.state + "." : "Mute set to " + updated.mute + ".";
    } catch (e) {
      msg.classList.remove("hidden");
      clear(msg);
      append(msg, [e.status === 401 || e.status === 403 ? "Not allowed: " : "Failed: ", e.message,
        e.status === 401 || e.status === 403 ? [" ", tokenLink("Enter a write token")] : null]);
    }
  }

  // The record as the API returns it: SCC's pair `{finding, resource}`.
  function jsonTab(f, res) {
    const text = JSON.stringify({ finding: f, resource: res }, null, 2);
    const pre = h("pre", { class: "json", id: "finding-json" }, text);
    const status = h("span", { class: "muted", id: "copy-status" });
    const copy = h("button", {
      type: "button", class: "btn", id: "copy-json",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(text);
          status.textContent = "Copied.";
        } catch (e) {
          const range = document.createRange();
          range.selectNodeContents(pre);
          const sel = window.getSelection();
          sel.removeAllRanges();
          sel.addRange(range);
          status.textContent = document.execCommand && document.execCommand("copy") ? "Copied." : "Selected; press Ctrl+C.";
        }
      },
    }, "Copy JSON");
    return h("div", { class: "card" }, h("div", { class: "card-head" }, h("h2", null, "Finding record"),
      h("span", { class: "muted" }, "Security Command Center v2 format: the finding exactly as stored, with its resource"), h("span", { class: "spacer" }), status, copy), pre);
  }

  function kv(rows) {
    const rs = rows.filter((r) => r && r[1] !== undefined && r[1] !== null && r[1] !== "" && !(Array.isArray(r[1]) && !r[1].length));
    if (!rs.length) return null;
    return h("dl", { class: "kv" }, rs.map(([k, v, cls]) => [h("dt", null, k), h("dd", { class: cls || null }, v instanceof Node ? v : String(v))]));
  }

  function card(title, id, ...content) {
    const c = content.filter(Boolean);
    if (!c.length) return null;
    return h("div", { class: "card", id }, h("div", { class: "card-head" }, h("h2", null, title)), h("div", { class: "card-body" }, c));
  }

  function argsList(args, truncated) {
    if (!args || !args.length) return null;
    return h("ol", { class: "args" }, args.map((a, i) => h("li", null, h("span", { class: "argn" }, String(i)), h("code", null, a))),
      truncated ? h("li", { class: "muted" }, "(arguments truncated)") : null);
  }

  function fileRows(label, file) {
    if (!file) return [];
    return [
      [label, file.path, "mono"],
      file.sha256 ? ["SHA-256", h("span", { class: "mono" }, file.sha256, " ", vtLink(file.sha256))] : null,
      file.size !== undefined ? ["Size", file.size + " bytes" + (file.partiallyHashed ? " (partially hashed)" : "")] : null,
    ];
  }

  function vtLink(sha) {
    return /^[0-9a-f]{64}$/i.test(sha) ? extLink("https://www.virustotal.com/gui/file/" + sha, "VirusTotal") : null;
  }

  function processTree(procs) {
    if (!procs || !procs.length) return null;
    // processes[0] is the trigger, then its ancestors: draw the root first.
    const chain = procs.slice().reverse();
    let ul = h("ul", { class: "ptree", id: "process-tree" });
    const top = ul;
    chain.forEach((p, i) => {
      const trigger = i === chain.length - 1;
      const li = h("li", { class: trigger ? "trigger" : null },
        h("div", { class: "pnode" },
          h("span", { class: "pname" }, p.name || "?"),
          h("span", { class: "pid" }, "pid " + p.pid + (p.parentPid !== undefined ? " · ppid " + p.parentPid : "")),
          trigger ? h("span", { class: "chip chip-trigger" }, "triggered the finding") : null),
        p.binary && p.binary.path ? h("div", { class: "pbin mono" }, p.binary.path) : null,
        p.args && p.args.length ? h("div", { class: "pargs mono" }, p.args.join(" ")) : null);
      ul.appendChild(li);
      if (!trigger) {
        const next = h("ul", null);
        li.appendChild(next);
        ul = next;
      }
    });
    return top;
  }

  function techniqueLinks(f) {
    const ids = src(f, "Mitre_Technique_Ids");
    const list = Array.isArray(ids) ? ids.filter((t) => /^T\d{4}(\.\d{3})?$/.test(String(t))) : [];
    if (!list.length) return null;
    return h("ul", { class: "links", id: "mitre-links" }, list.map((t) => {
      const [base, sub] = String(t).split(".");
      const url = "https://attack.mitre.org/techniques/" + base + "/" + (sub ? sub + "/" : "");
      return h("li", null, extLink(url, t), techniqueNames[t] ? h("span", { class: "muted" }, " " + techniqueNames[t].replace(/_/g, " ").toLowerCase()) : null);
    }));
  }

  function vtLinks(f) {
    const out = [];
    const seen = new Set();
    const add = (sha, what) => {
      if (!/^[0-9a-f]{64}$/i.test(sha) || seen.has(sha)) return;
      seen.add(sha);
      out.push(h("li", null, extLink("https://www.virustotal.com/gui/file/" + sha, "VirusTotal"), " ", h("span", { class: "mono muted" }, what + " " + sha.slice(0, 16) + "…")));
    };
    const links = src(f, "VirusTotal_Links");
    if (Array.isArray(links)) {
      for (const l of links) {
        const m = /^https:\/\/www\.virustotal\.com\/gui\/file\/([0-9a-f]{64})$/i.exec(String(l));
        if (m) add(m[1], "indicator");
      }
    }
    for (const p of f.processes || []) {
      if (p.binary && p.binary.sha256) add(p.binary.sha256, p.name || "binary");
      if (p.script && p.script.sha256) add(p.script.sha256, "script");
    }
    return out.length ? h("ul", { class: "links", id: "vt-links" }, out) : null;
  }

  function nextSteps(text) {
    if (!text) return null;
    const parts = String(text).split(/\s*(?:^|\s)\d+\.\s+/).filter((s) => s.trim());
    if (parts.length > 1) return h("ol", { class: "steps", id: "next-steps" }, parts.map((p) => h("li", null, p)));
    return h("p", { id: "next-steps" }, text);
  }

  function labelsList(labels) {
    if (!labels || !labels.length) return null;
    return h("span", { class: "labels" }, labels.map((l) => h("span", { class: "label" }, l.name + "=" + l.value)));
  }

  function summaryTab(f, r, seq) {
    const p = (f.processes && f.processes[0]) || null;
    const why = [];
    const score = src(f, "Model_Score");
    if (score !== undefined) why.push(["Model score", String(score)]);
    const reasons = src(f, "Model_Top_Reasons");
    if (Array.isArray(reasons) && reasons.length) why.push(["Top reasons", h("ul", { class: "plain" }, reasons.map((x) => h("li", null, typeof x === "string" ? x : JSON.stringify(x))))]);
    if (src(f, "Intel_Feed")) why.push(["Threat intel", h("span", null, String(src(f, "Intel_Feed")), src(f, "Intel_Comment") ? " — " + src(f, "Intel_Comment") : "")]);
    if (src(f, "Remote_Peer")) why.push(["Remote peer", String(src(f, "Remote_Peer")), "mono"]);
    if (src(f, "File_Layer")) why.push(["File layer", String(src(f, "File_Layer"))]);
    // Typed evidence (sourceProperties.Evidence: [{field, value}]), shown the same way for
    // every category: the conditions that held, the field each looked at, the value seen.
    if (src(f, "Rule_Id")) why.push(["Rule", String(src(f, "Rule_Id")), "mono"]);
    const evidence = src(f, "Evidence");
    if (Array.isArray(evidence) && evidence.length) {
      why.push(["Conditions that held", h("ul", { class: "plain evidence", id: "evidence" }, evidence.map((e) =>
        h("li", { class: "evidence-item" },
          h("span", { class: "mono ev-field" }, String((e && e.field) || "")),
          h("span", { class: "muted" }, " = "),
          h("code", { class: "ev-value" }, String((e && e.value) || "")))))]);
    }
    const conns = (f.connections || []).map((c) => h("li", { class: "mono" }, (c.protocol || "") + " " + c.sourceIp + ":" + c.sourcePort + " → " + c.destinationIp + ":" + c.destinationPort));

    const detected = card("What was detected", "card-detected",
      h("p", { class: "desc" }, f.description),
      p ? kv([
        ["Process", p.name],
        ...fileRows("Binary", p.binary),
        p.script ? ["Script", p.script.path || "(inline)", "mono"] : null,
        p.script && p.script.sha256 ? ["Script SHA-256", h("span", { class: "mono" }, p.script.sha256, " ", vtLink(p.script.sha256))] : null,
        ["Arguments", argsList(p.args, p.argumentsTruncated)],
        src(f, "Commands") && Array.isArray(src(f, "Commands")) ? ["Commands", h("ul", { class: "plain mono" }, src(f, "Commands").map((c) => h("li", null, String(c))))] : null,
      ]) : null,
      p && p.script && p.script.contents !== undefined
        ? h("div", { class: "script" }, h("div", { class: "script-head" }, "Script contents",
          p.script.size !== undefined && p.script.contents.length < p.script.size ? h("span", { class: "muted" }, " (truncated)") : null),
        h("pre", { class: "code", id: "script-contents" }, p.script.contents)) : null);
    const tree = card("Process tree", "card-tree", processTree(f.processes));
    const whyCard = card("Why it was flagged", "card-why", kv(why), conns.length ? h("div", null, h("h3", null, "Connections"), h("ul", { class: "plain" }, conns)) : null);
    const steps = card("Next steps", "card-steps", nextSteps(f.nextSteps));

    const resource = card("Affected resource", "card-resource", kv([
      ["Type", r.type, "res-type"], ["Project", r.project, "res-project"], ["Cluster", r.cluster, "res-cluster"],
      ["Node", r.node ? h("a", { href: "#/nodes?node=" + encodeURIComponent(r.node), class: "node-link", title: "Health of node " + r.node }, r.node) : undefined, "res-node"],
      ["Namespace", r.namespace], ["Pod", r.pod], ["Container", r.container],
      ["Image", r.image, "mono"], ["Image id", r.imageId, "mono"], ["Container id", r.containerId, "mono"],
      ["Labels", labelsList(r.labels.length ? r.labels : r.podLabels)], ["Resource name", f.resourceName, "mono"],
    ]));
    const ma = f.mitreAttack || {};
    const links = card("Related links", "card-links",
      kv([["Tactic", [ma.primaryTactic].concat(ma.additionalTactics || []).filter(Boolean).join(", ").replace(/_/g, " ")]]),
      h("h3", null, "MITRE ATT&CK"), techniqueLinks(f) || h("p", { class: "muted" }, "No technique ids."),
      vtLinks(f) ? [h("h3", null, "VirusTotal"), vtLinks(f)] : null,
      f.externalUri && /^https:\/\//.test(f.externalUri) ? [h("h3", null, "External"), h("p", null, extLink(f.externalUri, f.externalUri))] : null);
    const timeline = h("div", { class: "card", id: "card-related" },
      h("div", { class: "card-head" }, h("h2", null, "Related findings"), h("span", { class: "muted" }, "same container or pod on any node, ±60 minutes")),
      h("div", { class: "card-body", id: "related-body" }, h("p", { class: "muted" }, "Loading…")));
    loadRelated(f, seq);
    return h("div", { class: "cols" },
      h("div", { class: "col-main" }, detected, tree, whyCard, steps),
      h("div", { class: "col-side" }, resource, links, timeline));
  }

  async function loadRelated(f, seq) {
    let rel;
    try {
      rel = await api("GET", "/v1/findings/" + encodeURIComponent(idOf(f)) + "/related?windowMinutes=60");
    } catch (e) {
      if (seq !== navSeq) return;
      const b = document.getElementById("related-body");
      if (b) { clear(b); b.appendChild(h("p", { class: "muted" }, "Could not load: " + e.message)); }
      markReady("finding-summary");
      return;
    }
    if (seq !== navSeq) return;
    const b = document.getElementById("related-body");
    if (!b) return;
    clear(b);
    const items = (rel.findings || []).concat([f]).sort((a, c) => String(a.eventTime).localeCompare(String(c.eventTime)));
    if (items.length === 1) {
      b.appendChild(h("p", { class: "muted", id: "no-related" }, "No other findings for this container within an hour."));
    } else {
      const t0 = new Date(f.eventTime).getTime();
      b.appendChild(h("ol", { class: "timeline", id: "related-timeline" }, items.map((x) => {
        const self = x.name === f.name;
        const dt = new Date(x.eventTime).getTime() - t0;
        const rel = self ? "this finding" : (dt >= 0 ? "+" : "−") + fmtDelta(Math.abs(dt));
        return h("li", { class: "tl-item" + (self ? " tl-self" : ""), "data-id": idOf(x) },
          h("span", { class: "tl-dot tl-" + String(x.severity || "").toLowerCase() }),
          h("div", { class: "tl-time" }, timeEl(x.eventTime), h("span", { class: "tl-delta" }, rel)),
          h("div", { class: "tl-what" }, self ? h("strong", null, x.category) : h("a", { href: findingHref(x), class: "related-link" }, x.category),
            " ", sevBadge(x.severity)),
          x.processes && x.processes[0] ? h("div", { class: "tl-proc mono" }, (x.processes[0].args || [x.processes[0].name]).join(" ")) : null,
          resourceOf(x).node ? h("div", { class: "tl-node muted" }, "node " + resourceOf(x).node) : null);
      })));
    }
    markReady("finding-summary");
  }

  function fmtDelta(ms) {
    if (ms < 1000) return ms + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 1 : 0) + " s";
    return Math.round(ms / 60000) + " min";
  }

  // ---- start ------------------------------------------------------------------------------

  takeTokenFromFragment();
  setupTokenDialog();
  renderTokenButton();
  window.addEventListener("hashchange", () => { hideBanner(); route(); });
  route();
})();

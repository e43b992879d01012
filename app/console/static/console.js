// segmentflow console: plain JavaScript over the worker's HTTP API (no
// framework, no build step, nothing from the network but the API itself).
// Views: segment list, designer (live validation, preview, lifecycle),
// members with explain, live feed (server-sent events).
"use strict";

(() => {
  // -- small DOM helpers (text is always set as text: no HTML injection) ----

  const $ = (sel, root = document) => root.querySelector(sel);

  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    let value;
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k === "value") value = v;
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    if (value !== undefined) el.value = value;
    return el;
  }

  // Replace an element's children, skipping absent ones (null, false).
  const put = (el, ...kids) => el.replaceChildren(
    ...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));

  const fmt = (n) => (typeof n === "number" ? n.toLocaleString("en") : "–");

  function ago(iso) {
    if (!iso) return "–";
    const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
    if (!Number.isFinite(seconds)) return iso;
    if (seconds < 60) return seconds <= 1 ? "just now" : `${seconds} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return new Date(iso).toISOString().slice(0, 10);
  }

  const time = (iso, text) => h("time", { datetime: iso || "", title: iso || "" }, text);

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); });
    });
  }

  function debounce(fn, ms) {
    let timer;
    const wrapped = (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
    wrapped.cancel = () => clearTimeout(timer);
    return wrapped;
  }

  const badge = (status) => h("span", { class: `badge badge-${status}` }, status);

  // -- notices -------------------------------------------------------------

  function notify(message, kind = "error") {
    const box = $("#notice");
    put(box, h("span", {}, message),
      h("button", { type: "button", class: "link", "aria-label": "Dismiss",
                    onclick: () => { box.hidden = true; } }, "×"));
    box.className = `notice notice-${kind}`;
    box.hidden = false;
  }
  const clearNotice = () => { $("#notice").hidden = true; };

  // -- the API, with the token -------------------------------------------------

  const TOKEN_KEY = "segmentflow.token";
  let token = sessionStorage.getItem(TOKEN_KEY);

  class ApiError extends Error {
    constructor(status, body) {
      const err = (body && body.error) || {};
      super(err.message || `HTTP ${status}`);
      this.status = status;
      this.code = err.code || "error";
      this.details = err.details || [];
    }
  }

  const authHeaders = () => (token ? { Authorization: `Bearer ${token}` } : {});

  async function api(method, path, body, { signal } = {}) {
    const headers = { Accept: "application/json", ...authHeaders() };
    const init = { method, headers, signal, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const type = res.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await res.json() : await res.text();
    if (!res.ok) {
      const error = new ApiError(res.status, data);
      if (res.status === 401) askToken(error.message);
      throw error;
    }
    return data;
  }

  const seg = (id) => `/segments/${encodeURIComponent(id)}`;

  // The flow diagram's SVG (written by the API from the condition tree),
  // copied into the page element by element: only the shapes and attributes
  // the server draws with, text as text; anything else (scripts, handlers,
  // links, foreign content) is left out. null: not an SVG document.
  const SVG_NS = "http://www.w3.org/2000/svg";
  const SVG_ALLOWED = {
    svg: ["width", "height", "viewBox"],
    line: ["x1", "y1", "x2", "y2", "stroke"],
    rect: ["x", "y", "width", "height", "rx", "fill", "stroke"],
    text: ["x", "y", "text-anchor", "font-family", "font-size"],
  };
  function safeSvg(markup) {
    const root = new DOMParser().parseFromString(markup, "image/svg+xml").documentElement;
    const copy = (node) => {
      const allowed = node.namespaceURI === SVG_NS && SVG_ALLOWED[node.localName];
      if (!allowed) return null;
      const el = document.createElementNS(SVG_NS, node.localName);
      for (const name of allowed) {
        const v = node.getAttribute(name);
        if (v !== null && !/[()<>]/.test(v)) el.setAttribute(name, v);
      }
      for (const kid of node.childNodes) {
        if (kid.nodeType === Node.TEXT_NODE && node.localName === "text") el.append(kid.data);
        else if (kid.nodeType === Node.ELEMENT_NODE) {
          const c = copy(kid);
          if (c) el.append(c);
        }
      }
      return el;
    };
    return root && root.localName === "svg" ? copy(root) : null;
  }

  function updateSession() {
    $("#session-state").textContent = token ? "Token set" : "";
    $("#sign-out").hidden = !token;
    $("#sign-in").hidden = Boolean(token);
  }

  function askToken(reason) {
    const dialog = $("#token-dialog");
    $("#token-reason").textContent = token
      ? `The token was refused: ${reason}`
      : `This worker needs an API token: ${reason}`;
    if (!dialog.open) {
      $("#token-input").value = "";
      dialog.showModal();
      $("#token-input").focus();
    }
  }

  function setupSession() {
    $("#token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("#token-input").value.trim();
      if (!value) { $("#token-input").focus(); return; }
      token = value;
      sessionStorage.setItem(TOKEN_KEY, token);
      $("#token-dialog").close();
      updateSession();
      clearNotice();
      route();
    });
    $("#token-cancel").addEventListener("click", () => $("#token-dialog").close());
    $("#sign-in").addEventListener("click", () => askToken("enter the token to sign in"));
    $("#sign-out").addEventListener("click", () => {
      token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      updateSession();
      route();
    });
    updateSession();
  }

  // -- confirmation dialog ----------------------------------------------------------

  function confirmDialog(title, body, okLabel, danger) {
    const dialog = $("#confirm-dialog");
    $("#confirm-title").textContent = title;
    put($("#confirm-body"), ...[body].flat().map((p) =>
      (p instanceof Node ? p : h("p", {}, p))));
    const ok = $("#confirm-ok");
    ok.textContent = okLabel;
    ok.className = danger ? "danger" : "primary";
    return new Promise((resolve) => {
      const form = $("#confirm-form");
      const done = (answer) => {
        form.removeEventListener("submit", onSubmit);
        $("#confirm-cancel").removeEventListener("click", onCancel);
        dialog.removeEventListener("close", onClose);
        if (dialog.open) dialog.close();
        resolve(answer);
      };
      const onSubmit = (event) => { event.preventDefault(); done(true); };
      const onCancel = () => done(false);
      const onClose = () => done(false);
      form.addEventListener("submit", onSubmit);
      $("#confirm-cancel").addEventListener("click", onCancel);
      dialog.addEventListener("close", onClose);
      dialog.showModal();
      $("#confirm-cancel").focus();
    });
  }

  // -- live changes: server-sent events read with fetch (so the token goes in
  // a header, which EventSource cannot send) ----------------------------------------

  async function follow(segment, signal, { onChange, onState, onDropped }) {
    let delay = 1000;
    const url = "/ui/api/changes" + (segment ? `?segment=${encodeURIComponent(segment)}` : "");
    while (!signal.aborted) {
      onState("connecting");
      try {
        const res = await fetch(url, { headers: authHeaders(), signal, cache: "no-store" });
        if (res.status === 401) {
          const body = await res.json();
          onState("signed-out");
          askToken(body.error.message);
          return;
        }
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let event = "message";
            let data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) event = line.slice(6).trim();
              else if (line.startsWith("data:")) data += line.slice(5).trimStart();
            }
            if (event === "ready") { delay = 1000; onState("live"); }
            else if (event === "change") onChange(JSON.parse(data));
            else if (event === "dropped" && onDropped) onDropped(Number(data));
          }
        }
      } catch (error) {
        if (signal.aborted) return;
      }
      if (signal.aborted) return;
      onState("reconnecting", delay);
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 10000);
    }
  }

  const STATE_TEXT = {
    connecting: "Connecting…", live: "Live", reconnecting: "Disconnected; reconnecting…",
    "signed-out": "Needs a token", paused: "Paused",
  };

  function causeText(cause) {
    if (!cause) return "";
    const extra = Object.entries(cause).filter(([k]) => k !== "kind").map(([, v]) => v);
    return [cause.kind, ...extra].join(" ");
  }

  // -- views ----------------------------------------------------------------------

  let listFilters = { q: "", status: "", kind: "" };

  function heading(text, ...extra) {
    return h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, text), ...extra);
  }

  function coverageNote(answer) {
    if (!answer || answer.complete !== false) return null;
    return h("p", { class: "warning" },
      `Partial answer: ${answer.partitions_answered.length} of ${answer.partitions_total} ` +
      "partitions answered (a rebalance?). Refresh in a moment.");
  }

  async function listView(main, _params, signal) {
    const search = h("input", { id: "search", type: "search", value: listFilters.q,
                                placeholder: "id, name or formula" });
    const status = h("select", { id: "filter-status", value: listFilters.status },
      h("option", { value: "" }, "any"), ["live", "draft", "stopped", "refused"].map(
        (s) => h("option", { value: s }, s)));
    const kind = h("select", { id: "filter-kind", value: listFilters.kind },
      h("option", { value: "" }, "any"), ["dynamic", "static", "compound"].map(
        (s) => h("option", { value: s }, s)));
    const body = h("div", { id: "segment-list", "aria-live": "polite" },
      h("p", { class: "muted" }, "Loading…"));
    let segments = [];
    let answer = null;
    let recent = null; // GET /insights/recent: joins and leaves, last hour and day

    const activity = (s, span) => {
      const r = recent && recent.bySegment[s.id];
      if (!recent) return h("span", { class: "muted" }, "–");
      const joins = r ? r[`joins_${span}`] : 0;
      const leaves = r ? r[`leaves_${span}`] : 0;
      return h("span", { class: "activity", dataset: { joins, leaves, span },
                         title: `since ${recent[`${span}_from`]}` },
        h("span", { class: "joins" }, `+${fmt(joins)}`), " / ",
        h("span", { class: "leaves" }, `\u2212${fmt(leaves)}`),
        h("span", { class: "sr-only" }, ` (${joins} joined, ${leaves} left)`));
    };

    const render = () => {
      listFilters = { q: search.value.trim().toLowerCase(), status: status.value,
                      kind: kind.value };
      const shown = segments.filter((s) =>
        (!listFilters.status || s.status === listFilters.status) &&
        (!listFilters.kind || s.kind === listFilters.kind) &&
        (!listFilters.q || [s.id, s.name, s.formula].some(
          (v) => (v || "").toLowerCase().includes(listFilters.q))));
      const rows = shown.map((s) => h("tr", { dataset: { segment: s.id } },
        h("td", { "data-label": "Name" }, h("div", {},
          h("a", { href: `#/segments/${encodeURIComponent(s.id)}` }, s.name || s.id),
          h("div", { class: "muted small" }, s.id),
          s.refused_version ? h("div", { class: "warning small" },
            `v${s.refused_version} refused: ${s.refused_reason}`) : null)),
        h("td", { "data-label": "Status" }, badge(s.status)),
        h("td", { "data-label": "Kind" }, s.kind || "–"),
        h("td", { "data-label": "Members", class: "num" },
          h("a", { href: `#/segments/${encodeURIComponent(s.id)}/members`,
                   "aria-label": `${fmt(s.member_count)} members of ${s.name || s.id}` },
            fmt(s.member_count))),
        h("td", { "data-label": "Last hour", class: "num hour-activity" }, activity(s, "hour")),
        h("td", { "data-label": "Last day", class: "num day-activity" }, activity(s, "day")),
        h("td", { "data-label": "Last change" }, time(s.updated_at, ago(s.updated_at)))));
      put(body,
        coverageNote(answer),
        h("p", { class: "muted", id: "list-count" },
          `${shown.length} of ${segments.length} segments`),
        shown.length ? h("table", { class: "table" },
          h("caption", { class: "sr-only" }, "Segments"),
          h("thead", {}, h("tr", {}, ["Name", "Status", "Kind", "Members",
            "Joins / leaves, last hour", "Last day", "Last change"].map(
            (c, i) => h("th", { scope: "col", class: i >= 3 && i <= 5 ? "num" : null }, c)))),
          h("tbody", {}, rows))
          : h("p", { class: "empty" }, segments.length
            ? "No segment matches these filters." : "No segments yet: create one."));
    };

    const load = async () => {
      const activityOf = api("GET", "/insights/recent", undefined, { signal }).catch(() => null);
      answer = await api("GET", "/segments", undefined, { signal });
      segments = answer.segments;
      render();
      const r = await activityOf;
      recent = r && { ...r, bySegment: Object.fromEntries(r.segments.map((x) => [x.segment_id, x])) };
      if (r) {
        $("#segment-list").dataset.activityFrom = r.hour_from;
        render();
      }
    };
    for (const input of [search, status, kind]) input.addEventListener("input", render);

    put(main,
      heading("Segments", h("div", { class: "actions" },
        h("a", { class: "button primary", href: "#/new" }, "New segment"),
        h("button", { type: "button", onclick: () => load().catch(showError) }, "Refresh"))),
      h("form", { class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
        h("div", { class: "field" }, h("label", { for: "search" }, "Search"), search),
        h("div", { class: "field" }, h("label", { for: "filter-status" }, "Status"), status),
        h("div", { class: "field" }, h("label", { for: "filter-kind" }, "Kind"), kind)),
      body);
    await load();
  }

  // The designer ----------------------------------------------------------------------

  const FORMULA_POSITION = /line (\d+), column (\d+): ?(.*)$/s;

  function formulaOffset(text, line, column) {
    // Columns count characters (code points), as the parser does.
    const lines = text.split("\n");
    let offset = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) offset += Array.from(lines[i]).length + 1;
    return offset + column - 1;
  }

  function designerView(main, params, signal) {
    const isNew = params.id === undefined;
    const state = { summary: null, saved: null, checkSeq: 0, checkCtl: null };

    const field = (id, label, input, hint) => h("div", { class: "field" },
      h("label", { for: id }, label), input,
      hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null,
      h("p", { class: "field-error", id: `${id}-error`, hidden: true }));

    const idInput = h("input", { id: "seg-id", name: "id", required: true, autocomplete: "off",
      spellcheck: "false", "aria-describedby": "seg-id-hint seg-id-error",
      readonly: isNew ? null : true, value: isNew ? "" : params.id });
    const nameInput = h("input", { id: "seg-name", name: "name", autocomplete: "off",
                                    "aria-describedby": "seg-name-error" });
    const descInput = h("textarea", { id: "seg-description", name: "description", rows: "2",
                                       "aria-describedby": "seg-description-error" });
    const ownerInput = h("input", { id: "seg-owner", name: "owner", autocomplete: "off",
                                    "aria-describedby": "seg-owner-error" });
    const kindInput = h("select", { id: "seg-kind", name: "kind",
                                     "aria-describedby": "seg-kind-error" },
      ["dynamic", "static", "compound"].map((k) => h("option", { value: k }, k)));
    const tzInput = h("input", { id: "seg-timezone", name: "timezone", value: "UTC",
                                 autocomplete: "off", "aria-describedby": "seg-timezone-error" });
    const formula = h("textarea", { id: "formula", name: "formula", rows: "5",
      spellcheck: "false", autocapitalize: "off", autocomplete: "off",
      "aria-describedby": "formula-status formula-hint" });
    const mirror = h("div", { class: "mirror", "aria-hidden": "true" });
    const formulaStatus = h("div", { id: "formula-status", class: "formula-status",
                                     role: "status", "aria-live": "polite" });
    const stateBox = h("div", { id: "seg-state", class: "seg-state", role: "status",
                                "aria-live": "polite" });
    const preview = h("section", { id: "preview-result", class: "panel", hidden: true,
                                   "aria-live": "polite", "aria-labelledby": "preview-title" });
    const actions = h("div", { class: "actions", id: "designer-actions" });
    const versionsBox = h("section", { id: "versions", class: "panel", hidden: true,
                                       "aria-labelledby": "versions-title" });
    const flowBox = h("section", { id: "flow", class: "panel", hidden: true,
                                   "aria-labelledby": "flow-title" });
    // The structured condition builder (builder.js): it edits the tree, the
    // server writes the formula text (POST /ui/api/check).
    const builder = window.segmentflowConsole.createBuilder
      ? window.segmentflowConsole.createBuilder({
        onChange: (tree) => fromBuilder(tree), segmentId: () => idInput.value.trim() })
      : null;

    const values = () => {
      const v = { id: idInput.value.trim(), name: nameInput.value.trim() || undefined,
                  description: descInput.value, owner: ownerInput.value.trim(),
                  kind: kindInput.value,
                  timezone: tzInput.value.trim() || "UTC" };
      if (kindInput.value !== "static" && formula.value.trim()) v.formula = formula.value;
      return v;
    };
    const dirty = () => {
      const s = state.saved;
      if (!s) return true;
      const v = values();
      return (v.name || s.id) !== s.name || v.description !== (s.description || "") ||
        v.owner !== (s.owner || "") ||
        v.kind !== s.kind || v.timezone !== (s.timezone || "UTC") ||
        (v.formula || null) !== (s.formula || null);
    };

    // Live validation: the API's checks, the error shown where it is.
    const paintMirror = (errorOffset) => {
      const text = formula.value;
      if (errorOffset === null) { put(mirror, text + "\n"); return; }
      const chars = Array.from(text);
      const at = Math.min(Math.max(errorOffset, 0), chars.length);
      const bad = chars[at] === undefined || chars[at] === "\n" ? " " : chars[at];
      const after = chars[at] === undefined || chars[at] === "\n" ? at : at + 1;
      put(mirror, chars.slice(0, at).join(""),
        h("mark", { id: "formula-error-mark", dataset: { offset: String(at) } }, bad),
        chars.slice(after).join("") + "\n");
    };
    const syncScroll = () => { mirror.scrollTop = formula.scrollTop; };
    formula.addEventListener("scroll", syncScroll);

    const clearFieldErrors = () => {
      for (const el of main.querySelectorAll(".field-error")) { el.hidden = true; el.textContent = ""; }
      for (const el of main.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    };
    const showFieldError = (loc, message) => {
      const input = { id: idInput, name: nameInput, description: descInput, owner: ownerInput,
                      kind: kindInput,
                      timezone: tzInput }[loc.split(".")[0]];
      if (!input) return false;
      const box = $(`#${input.id}-error`);
      box.textContent = message;
      box.hidden = false;
      input.setAttribute("aria-invalid", "true");
      return true;
    };

    const showCheck = (error) => {
      clearFieldErrors();
      put(formulaStatus);
      formulaStatus.className = "formula-status";
      formula.removeAttribute("aria-invalid");
      if (!error) {
        paintMirror(null);
        formulaStatus.classList.add("ok");
        formulaStatus.dataset.valid = "true";
        formulaStatus.append(kindInput.value === "static"
          ? "Valid: a static segment (members are explicit)." : "Formula is valid.");
        return;
      }
      formulaStatus.dataset.valid = "false";
      let placed = null;
      const general = [];
      for (const d of error.details.length ? error.details : [{ loc: "", message: error.message }]) {
        const m = d.loc === "formula" ? FORMULA_POSITION.exec(d.message) : null;
        if (m && !placed) placed = { line: +m[1], column: +m[2], message: m[3], full: d.message };
        else if (!showFieldError(d.loc || "", d.message)) general.push(d.message);
      }
      formulaStatus.classList.add("error");
      if (placed) {
        const offset = formulaOffset(formula.value, placed.line, placed.column);
        paintMirror(offset);
        formula.setAttribute("aria-invalid", "true");
        const lineText = formula.value.split("\n")[placed.line - 1] || "";
        formulaStatus.append(
          h("p", { id: "formula-error-message", dataset: { line: placed.line, column: placed.column } },
            h("strong", {}, `Line ${placed.line}, column ${placed.column}: `), placed.message),
          h("pre", { class: "excerpt", "aria-hidden": "true" },
            `${lineText}\n${" ".repeat(Math.max(placed.column - 1, 0))}^`),
          h("button", { type: "button", class: "link", id: "goto-error", onclick: () => {
            formula.focus();
            const units = Array.from(formula.value).slice(0, offset).join("").length;
            formula.setSelectionRange(units, units + 1);
          } }, "Go to the error"));
      } else {
        paintMirror(null);
      }
      if (general.length) {
        if (!placed) formula.setAttribute("aria-invalid", "true");
        formulaStatus.append(...general.map((g) => h("p", { class: "general-error" }, g)));
      }
    };

    const check = async () => {
      state.checkCtl?.abort();
      const ctl = new AbortController();
      state.checkCtl = ctl;
      const seq = ++state.checkSeq;
      formulaStatus.dataset.valid = "pending";
      const body = values();
      // The builder follows the formula text when the text changed (not
      // when another field did: its unfinished edits stay).
      const textChanged = formula.value !== state.builderFormula;
      if (!body.formula && textChanged) {
        builder?.load(null);
        state.builderFormula = formula.value;
      }
      try {
        const r = await api("POST", "/ui/api/check", body, { signal: ctl.signal });
        if (seq === state.checkSeq) {
          showCheck(null);
          if (textChanged && builder) {
            builder.load(r.definition.condition || null);
            state.builderFormula = formula.value;
          }
        }
      } catch (error) {
        if (ctl.signal.aborted || seq !== state.checkSeq) return;
        if (error instanceof ApiError && [409, 422].includes(error.status)) {
          showCheck(error);
          if (body.formula) builder?.stale();
        }
        else if (error instanceof ApiError && error.status === 503) {
          formulaStatus.dataset.valid = "unknown";
          put(formulaStatus, "Not checked (the worker is busy); keep typing to retry.");
        } else if (!(error instanceof ApiError && error.status === 401)) showError(error);
      }
    };
    const checkSoon = debounce(check, 300);

    // A tree edited in the builder: the server checks it and writes its
    // formula text, which replaces the editor's.
    const sendTree = async (tree) => {
      checkSoon.cancel();
      state.checkCtl?.abort();
      const ctl = new AbortController();
      state.checkCtl = ctl;
      const seq = ++state.checkSeq;
      const body = values();
      delete body.formula;
      body.condition = tree;
      formulaStatus.dataset.valid = "pending";
      try {
        const r = await api("POST", "/ui/api/check", body, { signal: ctl.signal });
        if (seq !== state.checkSeq) return;
        formula.value = r.definition.formula || "";
        state.builderFormula = formula.value;
        paintMirror(null);
        showCheck(null);
        builder.accepted();
        renderActions();
      } catch (error) {
        if (ctl.signal.aborted || seq !== state.checkSeq) return;
        if (error instanceof ApiError && [409, 422].includes(error.status)) {
          formulaStatus.dataset.valid = formulaStatus.classList.contains("error") ? "false" : "true";
          builder.refused(error.details.length
            ? error.details.map((d) => d.message).join("; ") : error.message);
        } else if (!(error instanceof ApiError && error.status === 401)) showError(error);
      }
    };
    const fromBuilder = debounce((tree) => { sendTree(tree).catch(showError); }, 250);
    signal.addEventListener("abort", () => {
      checkSoon.cancel(); fromBuilder.cancel(); state.checkCtl?.abort();
    });
    for (const input of [idInput, nameInput, descInput, tzInput, formula]) {
      input.addEventListener("input", () => {
        if (input === formula) {
          paintMirror(null);
          // Typed text wins over a builder edit not yet written back.
          fromBuilder.cancel();
          state.checkCtl?.abort();
          state.checkSeq += 1;
        }
        formulaStatus.dataset.valid = "pending";
        checkSoon();
        renderActions();
      });
    }
    kindInput.addEventListener("change", () => {
      formula.disabled = kindInput.value === "static";
      if (builder) builder.el.hidden = formula.disabled;
      checkSoon();
      renderActions();
    });

    // Status of the segment as the API reports it.
    const renderState = () => {
      const s = state.summary;
      if (!s) {
        put(stateBox, h("p", { class: "muted" }, "Not saved yet."));
        return;
      }
      const applied = s.applied_version >= s.version;
      stateBox.dataset.status = s.status;
      stateBox.dataset.applied = String(applied);
      stateBox.dataset.version = String(s.version);
      const gl = s.go_live;
      let progress;
      if (!applied) progress = `version ${s.version} accepted; applying…`;
      else if (s.status === "live") {
        progress = gl.complete ? `version ${s.version} applied; go-live complete`
          : `version ${s.version} applied; go-live ${gl.partitions_complete} of ${gl.partitions} partitions`;
      } else progress = `version ${s.version} applied`;
      stateBox.dataset.golive = String(Boolean(gl && gl.complete));
      put(stateBox,
        h("p", {}, badge(s.status), " ", h("span", { id: "seg-progress" }, progress)),
        h("p", {}, h("a", { href: `#/segments/${encodeURIComponent(s.id)}/members`,
                            id: "members-link" },
          `${fmt(s.member_count)} members`), " · ",
          h("a", { href: `#/feed/${encodeURIComponent(s.id)}` }, "live feed"), " · ",
          h("a", { href: `#/segments/${encodeURIComponent(s.id)}/insights`,
                   id: "insights-link" }, "insights"), " · ",
          "last change ", time(s.definition?.updated_at, ago(s.definition?.updated_at))),
        s.refused_version ? h("p", { class: "warning" },
          `Version ${s.refused_version} was refused: ${s.refused_reason}. ` +
          `Version ${s.version} stays in force.`) : null);
    };

    const button = (label, onclick, cls, id) => h("button", { type: "button", class: cls, id,
      onclick: () => onclick().catch(showError) }, label);

    const renderActions = () => {
      const s = state.summary;
      const live = s && s.status === "live";
      const list = [button("Preview", runPreview, null, "preview")];
      if (!s || s.status === "refused") list.push(button("Save as draft", () => save("draft"), null, "save-draft"));
      else if (live) {
        const b = button("Apply changes", () => save(undefined), "primary", "apply");
        b.disabled = !dirty();
        list.push(b);
      } else list.push(button("Save", () => save(undefined), null, "save"));
      if (!live) list.push(button("Go live", goLive, "primary", "go-live"));
      else list.push(button("Stop", stop, null, "stop"));
      if (s) list.push(button("Delete", remove, "danger", "delete"));
      put(actions, ...list);
    };

    // Flow: GET /segments/ID/flow, the condition tree drawn by the server
    // (inline SVG, rebuilt element by element from an allow-list: nothing
    // it carries can run), the segments it reads and those that read it.
    const segmentLinks = (listId, links, none) => (links.length
      ? h("ul", { class: "flow-links", id: listId }, links.map((l) => h("li", {
          dataset: { segment: l.segment_id, status: l.status || "missing" } },
        l.status ? h("a", { href: `#/segments/${encodeURIComponent(l.segment_id)}` },
          l.segment_id) : h("span", {}, l.segment_id),
        " ", l.status ? badge(l.status) : h("span", { class: "muted small" }, "no such segment"))))
      : h("p", { class: "muted small", id: listId }, none));
    const loadFlow = async () => {
      const r = await api("GET", `${seg(params.id)}/flow`, undefined, { signal });
      const diagram = safeSvg(r.svg);
      if (diagram) {
        diagram.setAttribute("role", "img");
        diagram.setAttribute("aria-label", `Condition tree of ${params.id}: ` +
          (r.formula || "explicit members (static)"));
      }
      flowBox.hidden = false;
      put(flowBox,
        h("h2", { id: "flow-title" }, "Flow"),
        h("div", { class: "flow-diagram", id: "flow-diagram", tabindex: "0",
                   "aria-label": "Condition tree (scrolls sideways when wide)" },
          diagram || h("p", { class: "error" }, "The diagram could not be read.")),
        h("div", { class: "flow-refs" },
          h("div", {},
            h("h3", { id: "flow-references-title" }, "Segments it references"),
            segmentLinks("flow-references", r.references, "None.")),
          h("div", {},
            h("h3", { id: "flow-dependents-title" }, "Segments that depend on it"),
            segmentLinks("flow-dependents", r.dependents, "None: no segment references it."))),
        h("details", { class: "flow-mermaid" },
          h("summary", {}, "Mermaid text"),
          h("pre", {}, h("code", {}, r.mermaid))));
    };
    const refreshFlow = () => loadFlow().catch((error) => {
      if (!(error instanceof ApiError) || error.status === 404) return;
      flowBox.hidden = false;
      put(flowBox, h("h2", { id: "flow-title" }, "Flow"), h("p", { class: "error" }, error.message));
    });

    // Version history: GET /segments/ID/versions (read from the
    // segment-definitions topic), newest first, with what changed.
    const changeText = (c) => {
      if (c.field === "op") return c.to === "delete" ? "deleted" : "created";
      const show = (v) => (v === null || v === undefined || v === "" ? "(none)"
        : Array.isArray(v) ? (v.length ? v.join(", ") : "(none)") : String(v));
      if (c.field === "formula") {
        return h("span", {}, "formula ", h("code", { class: "was" }, show(c.from)), " → ",
          h("code", {}, show(c.to)));
      }
      return `${c.field}: ${show(c.from)} → ${show(c.to)}`;
    };
    const loadVersions = async () => {
      const r = await api("GET", `${seg(params.id)}/versions?limit=20`, undefined, { signal });
      versionsBox.hidden = false;
      versionsBox.dataset.total = String(r.total);
      const rows = r.versions.map((v) => h("tr", {
          dataset: { version: v.version ?? "", op: v.op, inForce: String(v.in_force),
                     changed: v.changes.map((c) => c.field).join(" ") } },
        h("td", { "data-label": "Version" },
          v.op === "delete" ? "deleted" : `v${v.version}`,
          v.in_force ? h("span", { class: "badge badge-live in-force" }, "in force") : null),
        h("td", { "data-label": "When" }, time(v.updated_at || v.written_at,
          ago(v.updated_at || v.written_at))),
        h("td", { "data-label": "Status" }, v.status ? badge(v.status) : "–"),
        h("td", { "data-label": "What changed" },
          h("ul", { class: "changes" }, v.changes.length
            ? v.changes.map((c) => h("li", { dataset: { field: c.field } }, changeText(c)))
            : h("li", { class: "muted" }, "nothing (written again)")),
          // The version's formula, when the changes do not already show it.
          v.formula && !v.changes.some((c) => c.field === "formula")
            ? h("p", { class: "muted small version-formula" }, "formula ", h("code", {}, v.formula))
            : null,
          v.refused_reason ? h("p", { class: "warning small" }, `Refused: ${v.refused_reason}`)
            : null,
          // Back to an earlier formula: into the editor, applied (with its
          // impact) only when saved.
          v.op === "definition" && v.formula && !v.in_force ? h("button", {
            type: "button", class: "link restore", id: `restore-${v.version}`,
            "aria-label": `Put the formula of version ${v.version} in the editor`,
            onclick: () => {
              formula.value = v.formula;
              formula.dispatchEvent(new Event("input"));
              formula.focus();
              formula.scrollIntoView({ block: "center" });
            } }, "Put this formula in the editor") : null)));
      put(versionsBox,
        h("h2", { id: "versions-title" }, "Version history"),
        h("p", { class: "muted small" }, `${fmt(r.total)} version${r.total === 1 ? "" : "s"} ` +
          `on ${r.source}` + (r.history_complete ? "."
            : "; older ones were deleted by the topic's retention.")),
        h("table", { class: "table versions" },
          h("caption", { class: "sr-only" }, "Versions, newest first"),
          h("thead", {}, h("tr", {}, ["Version", "When", "Status", "What changed"].map(
            (c) => h("th", { scope: "col" }, c)))),
          h("tbody", { id: "versions-rows" }, rows)));
    };
    const refreshVersions = () => loadVersions().catch((error) => {
      if (!(error instanceof ApiError) || error.status === 404) return;
      versionsBox.hidden = false;
      put(versionsBox, h("h2", { id: "versions-title" }, "Version history"),
        h("p", { class: "error" }, error.message));
    });

    const fill = (d) => {
      nameInput.value = d.name || "";
      descInput.value = d.description || "";
      ownerInput.value = d.owner || "";
      kindInput.value = d.kind || "dynamic";
      tzInput.value = d.timezone || "UTC";
      formula.value = d.formula || "";
      formula.disabled = kindInput.value === "static";
      if (builder) {
        builder.el.hidden = formula.disabled;
        builder.setTimezone(tzInput.value);
      }
    };

    const load = async () => {
      const summary = await api("GET", seg(params.id), undefined, { signal });
      state.summary = summary;
      state.saved = summary.definition;
      renderState();
      renderActions();
      return summary;
    };

    // Writes: accepted (202) once produced; the page then follows the API
    // until the evaluators applied the version.
    const followUntilApplied = async (version, wantLive) => {
      for (let i = 0; i < 300 && !signal.aborted; i++) {
        const s = await load();
        if (s.applied_version >= version && (!wantLive || s.go_live.complete)) {
          await refreshVersions();
          refreshFlow();
          return;
        }
        await sleep(300, signal);
      }
    };

    const write = async (body) => {
      // A check in flight would hold one of the API's heavy-request slots.
      checkSoon.cancel();
      state.checkCtl?.abort();
      const id = values().id;
      const accepted = await api("PUT", seg(id), body, { signal });
      if (isNew) {
        location.hash = `#/segments/${encodeURIComponent(id)}`;
        return null;
      }
      notify(`Saved: version ${accepted.version} (${accepted.status}) accepted.`, "info");
      state.saved = accepted;
      // The check cancelled above did not run: check the text saved now (the
      // builder follows it).
      check();
      await followUntilApplied(accepted.version, accepted.status === "live");
      return accepted;
    };

    async function save(status) {
      const body = values();
      if (status) body.status = status;
      if (state.summary && state.summary.status === "live") {
        if (!(await confirmImpact(body))) return;
      }
      await write(body);
    }

    async function confirmImpact(body) {
      // Before an edit to a live segment applies: who would join and who
      // would leave, against the current members of the same id (the
      // preview's impact).
      const result = await api("POST", "/preview?sample=5", body, { signal });
      const now = state.summary.member_count;
      const impact = result.impact || { join: 0, leave: 0, join_sample: [], leave_sample: [] };
      const who = (ids, n) => (ids.length ? `: ${ids.join(", ")}${n > ids.length ? ", …" : ""}` : "");
      return confirmDialog(`Apply the change to live segment "${state.summary.id}"?`, [
        h("p", { id: "impact-summary", dataset: { join: impact.join, leave: impact.leave,
                                                  size: result.size } },
          `Now: ${fmt(now)} members. With this definition: ${fmt(result.size)} contacts match.`),
        h("ul", { class: "impact" },
          h("li", { id: "impact-join", class: "impact-join" },
            h("strong", {}, `+${fmt(impact.join)}`), ` would join${who(impact.join_sample, impact.join)}`),
          h("li", { id: "impact-leave", class: "impact-leave" },
            h("strong", {}, `\u2212${fmt(impact.leave)}`),
            ` would leave${who(impact.leave_sample, impact.leave)}`)),
        coverageNote(result),
        "Members who no longer match leave at once; new matches join.",
      ].filter(Boolean), "Apply", false);
    }

    async function goLive() {
      if (isNew || dirty()) {
        const body = { ...values(), status: "live" };
        if (!isNew && !(await confirmImpact(body))) return;
        await write(body);
        return;
      }
      const accepted = await api("POST", `${seg(params.id)}/activate`, undefined, { signal });
      notify(`Going live: version ${accepted.version} accepted.`, "info");
      await followUntilApplied(accepted.version, true);
    }

    async function stop() {
      const accepted = await api("POST", `${seg(params.id)}/stop`, undefined, { signal });
      notify(`Stopping: version ${accepted.version} accepted (membership frozen).`, "info");
      await followUntilApplied(accepted.version, false);
    }

    async function remove() {
      const s = state.summary;
      const ok = await confirmDialog(`Delete segment "${s.id}"?`, [
        `All ${fmt(s.member_count)} members leave the segment, and its definition is deleted.`,
        "This cannot be undone.",
      ], "Delete", true);
      if (!ok) return;
      await api("DELETE", seg(s.id), undefined, { signal });
      notify(`Segment "${s.id}" deleted: every member leaves.`, "info");
      location.hash = "#/segments";
    }

    async function runPreview() {
      preview.hidden = false;
      put(preview, h("h2", { id: "preview-title" }, "Preview"),
        h("p", { class: "muted" }, "Counting…"));
      try {
        const result = await api("POST", "/preview?sample=10", values(), { signal });
        const now = state.summary ? state.summary.member_count : null;
        put(preview,
          h("h2", { id: "preview-title" }, "Preview"),
          h("p", { id: "preview-size", dataset: { size: result.size } },
            h("strong", {}, fmt(result.size)), ` contacts match (of ${fmt(result.contacts_scanned)} scanned)`,
            now !== null ? `; now ${fmt(now)} members (${result.size - now >= 0 ? "+" : "−"}` +
              `${fmt(Math.abs(result.size - now))})` : "", ". Nothing changed yet."),
          state.summary && result.impact ? h("p", { id: "preview-impact",
              dataset: { join: result.impact.join, leave: result.impact.leave } },
            `Against the current members: +${fmt(result.impact.join)} would join, ` +
            `\u2212${fmt(result.impact.leave)} would leave.`) : null,
          coverageNote(result),
          result.sample.length ? h("p", {}, "Sample: ", result.sample.join(", ")) : null,
          // fields no input carried yet: typos are accepted, so say it here
          (result.warnings || []).length
            ? h("ul", { id: "preview-warnings", class: "warnings" },
                ...result.warnings.map((w) => h("li", {}, "Warning: ", w)))
            : null);
        preview.scrollIntoView({ block: "nearest" });
      } catch (error) {
        if (error instanceof ApiError && [409, 422].includes(error.status)) {
          showCheck(error);
          put(preview, h("h2", { id: "preview-title" }, "Preview"),
            h("p", { class: "error" }, "Fix the definition first: ", error.message));
        } else throw error;
      }
    }

    put(main,
      heading(isNew ? "New segment" : `Segment ${params.id}`),
      h("p", {}, h("a", { href: "#/segments" }, "← All segments")),
      stateBox,
      h("form", { class: "designer", id: "designer", novalidate: true,
                  onsubmit: (e) => e.preventDefault() },
        h("div", { class: "grid" },
          field("seg-id", "Id", idInput, "Letters, digits and _ . : @ + -; cannot change later"),
          field("seg-name", "Name", nameInput),
          field("seg-kind", "Kind", kindInput),
          field("seg-timezone", "Time zone", tzInput, "IANA name, e.g. Europe/Paris"),
          field("seg-owner", "Owner", ownerInput, "Who answers for it: a person, an email, a team")),
        field("seg-description", "Description", descInput),
        h("div", { class: "field" },
          h("label", { for: "formula" }, "Formula"),
          h("div", { class: "editor" }, mirror, formula),
          h("p", { class: "hint", id: "formula-hint" },
            'e.g. city = "Paris" and performed purchase at least 2 times within last 30 days'),
          formulaStatus),
        builder ? builder.el : null,
        actions),
      preview,
      flowBox,
      versionsBox);
    renderState();
    renderActions();
    paintMirror(null);
    if (builder) {
      // Choices for the builder: attributes and event properties seen, event
      // types declared, segments (none of them is needed to type a formula).
      const quiet = (p) => p.catch(() => null);
      Promise.all([quiet(api("GET", "/fields", undefined, { signal })),
                   quiet(api("GET", "/event-types", undefined, { signal })),
                   quiet(api("GET", "/segments", undefined, { signal }))])
        .then(([fields, types, segments]) => builder.setChoices({
          fields,
          eventTypes: ((types && types.event_types) || []).filter((t) => !t.retired),
          segments: ((segments && segments.segments) || []).map((x) => x.id),
        }));
      tzInput.addEventListener("input", () => builder.setTimezone(tzInput.value.trim()));
      if (isNew) {
        builder.load(null);
        state.builderFormula = "";
      }
    }
    if (isNew) return null;
    return load().then(async (s) => {
      if (s.definition) fill(s.definition);
      if (s.name) $("h1", main).textContent = s.name;
      paintMirror(null);
      renderActions();
      check();
      refreshVersions();
      refreshFlow();
      // Just written (e.g. created and sent live): follow until applied.
      const settled = s.applied_version >= s.version &&
        (s.status !== "live" || s.go_live.complete);
      if (!settled) await followUntilApplied(s.version, s.status === "live");
    });
  }

  // Members and explain ------------------------------------------------------------

  function renderTrace(node) {
    const verdict = node.result ? "met" : "not met";
    return h("li", { class: node.result ? "ok" : "no" },
      h("span", { class: `verdict ${node.result ? "ok" : "no"}` }, node.result ? "✓ met" : "✗ not met"),
      " ", h("code", {}, node.text),
      node.seen !== undefined ? h("span", { class: "seen" }, ` seen: ${node.seen}`) : null,
      node.threshold !== undefined ? h("span", { class: "seen" }, ` against: ${node.threshold}`) : null,
      h("span", { class: "sr-only" }, ` (${verdict})`),
      node.children ? h("ul", {}, node.children.map(renderTrace)) : null);
  }

  function membersView(main, params, signal) {
    const id = params.id;
    const pageSize = h("select", { id: "page-size", value: "25" },
      ["10", "25", "50", "100"].map((n) => h("option", { value: n }, n)));
    const list = h("div", { id: "member-list", "aria-live": "polite" });
    const countBox = h("p", { id: "member-count", role: "status" });
    const liveBox = h("p", { id: "members-live", class: "muted small" });
    const explainBox = h("section", { id: "explain", class: "panel", hidden: true,
                                      "aria-labelledby": "explain-title", tabindex: "-1" });
    const contactInput = h("input", { id: "explain-contact", autocomplete: "off",
                                      spellcheck: "false" });
    const cursors = [null]; // the cursor of each page seen: back and forth
    let page = 0;
    let next = null;
    let opener = null;

    const explain = async (contact, from) => {
      opener = from || null;
      explainBox.hidden = false;
      put(explainBox, h("h2", { id: "explain-title" }, `Explain ${contact}`),
        h("p", { class: "muted" }, "Loading…"));
      explainBox.focus();
      const close = h("button", { type: "button", id: "explain-close", onclick: () => {
        explainBox.hidden = true;
        opener?.focus();
      } }, "Close");
      try {
        const r = await api("GET",
          `/contacts/${encodeURIComponent(contact)}/explain/${encodeURIComponent(id)}`,
          undefined, { signal });
        explainBox.dataset.contact = contact;
        explainBox.dataset.member = String(r.member);
        put(explainBox,
          h("h2", { id: "explain-title" },
            `Why ${contact} is ${r.member ? "" : "not "}in ${id}`),
          h("p", {}, "Member: ", h("strong", {}, r.member ? "yes" : "no"),
            "; the definition evaluates to ", h("strong", {}, String(r.evaluates_to)),
            r.member !== r.evaluates_to ? " (include/exclude lists or a static edit decide)" : ""),
          h("ul", { class: "trace", id: "explain-trace" }, renderTrace(r.trace)),
          h("details", {}, h("summary", {}, "As text"), h("pre", {}, r.text)),
          close);
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        put(explainBox, h("h2", { id: "explain-title" }, `Explain ${contact}`),
          h("p", { class: "error" }, error.message), close);
      }
    };

    const loadCount = async () => {
      const s = await api("GET", seg(id), undefined, { signal });
      countBox.dataset.count = String(s.member_count);
      put(countBox, h("strong", {}, fmt(s.member_count)), ` members · `, badge(s.status),
        ` · ${s.kind}`);
      const head = $("h1", main);
      if (head && s.name) head.textContent = `Members of ${s.name}`;
    };

    const loadPage = async () => {
      const q = new URLSearchParams({ limit: pageSize.value });
      if (cursors[page]) q.set("cursor", cursors[page]);
      const r = await api("GET", `${seg(id)}/members?${q}`, undefined, { signal });
      next = r.next_cursor;
      cursors[page + 1] = next;
      put(list,
        coverageNote(r),
        r.members.length ? h("ul", { class: "members" }, r.members.map((m) => h("li", {},
          h("button", { type: "button", class: "link contact", dataset: { contact: m },
                        onclick: (e) => explain(m, e.currentTarget).catch(showError) }, m))))
          : h("p", { class: "empty" }, page ? "No more members." : "No members (yet)."),
        h("nav", { class: "pager", "aria-label": "Pages" },
          h("button", { type: "button", id: "prev-page", disabled: page === 0 || null,
                        onclick: () => { page -= 1; loadPage().catch(showError); } }, "Previous"),
          h("span", {}, `Page ${page + 1}`),
          h("button", { type: "button", id: "next-page", disabled: !next || null,
                        onclick: () => { page += 1; loadPage().catch(showError); } }, "Next")));
    };

    pageSize.addEventListener("change", () => {
      cursors.length = 1; page = 0; loadPage().catch(showError);
    });

    // New members show up as they join: the first page and the count follow
    // the live changes of this segment.
    let joined = 0;
    let left = 0;
    const refresh = debounce(() => {
      loadCount().catch(showError);
      if (page === 0) loadPage().catch(showError);
    }, 400);
    follow(id, signal, {
      onChange: (c) => {
        if (c.change === "joined") joined += 1; else left += 1;
        liveBox.textContent = `Live: ${joined} joined, ${left} left since this page opened ` +
          `(last: ${c.contact_id} ${c.change}).`;
        refresh();
      },
      onState: (s) => {
        liveBox.dataset.state = s;
        if (!joined && !left) {
          liveBox.textContent = s === "live" ? "Following changes live." : STATE_TEXT[s];
        }
      },
    });
    signal.addEventListener("abort", () => refresh.cancel());

    put(main,
      heading(`Members of ${id}`),
      h("p", {}, h("a", { href: `#/segments/${encodeURIComponent(id)}` }, "← Segment"), " · ",
        h("a", { href: `#/feed/${encodeURIComponent(id)}` }, "Live feed"), " · ",
        h("a", { href: `#/segments/${encodeURIComponent(id)}/insights` }, "Insights")),
      countBox, liveBox,
      h("div", { class: "columns" },
        h("section", { "aria-labelledby": "members-title" },
          h("div", { class: "row" }, h("h2", { id: "members-title" }, "Members"),
            h("div", { class: "field inline" }, h("label", { for: "page-size" }, "Per page"), pageSize)),
          list,
          h("form", { class: "inline-form", id: "explain-form", onsubmit: (e) => {
            e.preventDefault();
            const c = contactInput.value.trim();
            if (c) explain(c, contactInput).catch(showError);
          } },
            h("div", { class: "field" }, h("label", { for: "explain-contact" },
              "Explain any contact (why in, why not)"), contactInput),
            h("button", { type: "submit" }, "Explain"))),
        explainBox));
    return Promise.all([loadCount(), loadPage()]);
  }

  // Live feed -------------------------------------------------------------------------

  function feedView(main, params, signal) {
    const MAX_ROWS = 200;
    const segment = params.id || "";
    const select = h("select", { id: "feed-segment" }, h("option", { value: "" }, "All segments"));
    const stateBox = h("p", { id: "feed-state", role: "status", class: "muted" }, "Connecting…");
    const counts = h("p", { id: "feed-counts" });
    const rows = h("tbody", { id: "feed-rows" });
    const pause = h("button", { type: "button", id: "feed-pause", "aria-pressed": "false" }, "Pause");
    let paused = false;
    let joined = 0;
    let left = 0;
    let dropped = 0;
    const pending = [];

    const renderCounts = () => {
      counts.dataset.joined = String(joined);
      counts.dataset.left = String(left);
      counts.textContent = `Since this page opened: ${joined} joined, ${left} left` +
        (dropped ? `, ${dropped} not shown (too fast)` : "") + ".";
    };
    const flush = () => {
      if (paused || !pending.length) return;
      const fresh = pending.splice(0).reverse().map((c) => h("tr", { class: `change-${c.change}`,
          dataset: { segment: c.segment_id, contact: c.contact_id, change: c.change } },
        h("td", { "data-label": "Time" }, time(c.at, new Date(c.at).toLocaleTimeString("en-GB"))),
        h("td", { "data-label": "Segment" },
          h("a", { href: `#/segments/${encodeURIComponent(c.segment_id)}` }, c.segment_id)),
        h("td", { "data-label": "Contact" }, c.contact_id),
        h("td", { "data-label": "Change" }, h("span", { class: `badge badge-${c.change}` },
          c.change === "joined" ? "+ joined" : "− left")),
        h("td", { "data-label": "Cause" }, causeText(c.cause))));
      rows.prepend(...fresh);
      while (rows.children.length > MAX_ROWS) rows.lastElementChild.remove();
    };
    pause.addEventListener("click", () => {
      paused = !paused;
      pause.setAttribute("aria-pressed", String(paused));
      pause.textContent = paused ? "Resume" : "Pause";
      if (!paused) flush();
    });
    select.addEventListener("change", () => {
      location.hash = select.value ? `#/feed/${encodeURIComponent(select.value)}` : "#/feed";
    });

    follow(segment, signal, {
      onChange: (c) => {
        if (c.change === "joined") joined += 1; else left += 1;
        pending.push(c);
        if (pending.length > MAX_ROWS) pending.splice(0, pending.length - MAX_ROWS);
        renderCounts();
        requestAnimationFrame(flush);
      },
      onDropped: (n) => { dropped += n; renderCounts(); },
      onState: (s, delay) => {
        stateBox.dataset.state = s;
        stateBox.textContent = s === "live"
          ? `Live: following ${segment ? `segment ${segment}` : "every segment"}.`
          : s === "reconnecting" ? `Disconnected; reconnecting in ${Math.round(delay / 1000)} s…`
          : STATE_TEXT[s];
      },
    });
    renderCounts();

    put(main,
      heading("Live feed"),
      h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
        h("div", { class: "field" }, h("label", { for: "feed-segment" }, "Segment"), select),
        h("div", { class: "field buttons" }, pause,
          h("button", { type: "button", id: "feed-clear", onclick: () => put(rows) }, "Clear"))),
      stateBox, counts,
      h("table", { class: "table feed" },
        h("caption", { class: "sr-only" }, "Membership changes, newest first"),
        h("thead", {}, h("tr", {}, ["Time", "Segment", "Contact", "Change", "Cause"].map(
          (c) => h("th", { scope: "col" }, c)))),
        rows));
    return api("GET", "/segments", undefined, { signal }).then((answer) => {
      const ids = answer.segments.map((s) => s.id);
      if (segment && !ids.includes(segment)) ids.push(segment);
      select.append(...ids.map((sid) => h("option", { value: sid }, sid)));
      select.value = segment;
    });
  }

  // -- routing ---------------------------------------------------------------------

  const ROUTES = [
    [/^#\/segments\/?$/, listView, "segments", () => "Segments"],
    [/^#\/new$/, designerView, "segments", () => "New segment"],
    [/^#\/segments\/([^/]+)\/members$/, membersView, "segments", (p) => `Members of ${p.id}`],
    [/^#\/segments\/([^/]+)$/, designerView, "segments", (p) => `Segment ${p.id}`],
    [/^#\/feed(?:\/([^/]+))?$/, feedView, "feed", () => "Live feed"],
  ];
  let current = null;
  let navigated = false;

  function showError(error) {
    if (error && error.name === "AbortError") return;
    if (error instanceof ApiError && error.status === 401) return; // the token dialog is up
    notify(error instanceof ApiError ? error.message : `Error: ${error && error.message}`);
  }

  function route() {
    current?.abort();
    const controller = new AbortController();
    current = controller;
    const hash = location.hash || "#/segments";
    const main = $("#main");
    let match = null;
    let found = null;
    for (const entry of ROUTES) {
      match = entry[0].exec(hash);
      if (match) { found = entry; break; }
    }
    if (!found) { location.replace("#/segments"); return; }
    const [, view, nav, title] = found;
    const params = match[1] !== undefined ? { id: decodeURIComponent(match[1]) } : {};
    document.title = `${title(params)} · segmentflow`;
    for (const a of document.querySelectorAll("[data-nav]")) {
      if (a.dataset.nav === nav) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    put(main);
    const done = Promise.resolve(view(main, params, controller.signal))
      .catch((error) => { if (!controller.signal.aborted) showError(error); });
    // After a navigation (not the first page load), focus goes to the new heading.
    if (navigated) $("h1", main)?.focus();
    navigated = true;
    return done;
  }

  // Pages of other scripts (insights.js, loaded after this one) add their
  // routes here before the first route() and build on these helpers.
  window.segmentflowConsole = {
    h, put, fmt, api, seg, heading, coverageNote, showError, follow, debounce, ApiError,
    routes: ROUTES,
  };

  window.addEventListener("hashchange", () => { clearNotice(); route(); });
  document.addEventListener("DOMContentLoaded", () => {
    setupSession();
    route();
  });
})();

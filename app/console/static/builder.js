// segmentflow console: the structured condition builder of the designer.
// It edits the condition tree (models/conditions.py, as the API gives it in
// a definition's "condition") and never writes formula text itself: the
// designer sends the edited tree to POST /ui/api/check, whose answer carries
// the formula the server's formatter wrote (one source of truth: the
// server's parser and formatter). Text typed in the formula editor comes
// back the same way, as the tree the server parsed.
"use strict";

(() => {
  const C = window.segmentflowConsole;
  if (!C) return;
  const { h, put } = C;

  const OPS = ["=", "!=", "<", "<=", ">", ">=", "in", "not in", "contains", "starts with"];
  const ATTR_OPS = [...OPS, "exists", "not exists", "between", "within last", "within next",
                    "anniversary in next", "anniversary in last"];
  const UNITS = ["minutes", "hours", "days", "weeks"];
  const KINDS = [
    ["profile", "Profile attribute"], ["account", "Account attribute"],
    ["performed", "Behaviour: performed"], ["aggregate", "Behaviour: aggregate"],
    ["last_performed", "Behaviour: last performed"], ["in_segment", "In segment"],
    ["consented", "Consent"], ["bucket", "Split bucket"],
  ];
  const VALUE_TYPES = [["text", "text"], ["number", "number"], ["boolean", "true/false"],
                       ["date", "date"], ["datetime", "date-time"], ["relative", "relative"]];
  const clone = (x) => JSON.parse(JSON.stringify(x));

  // -- the tree <-> the builder's own model --------------------------------
  // group: {t: "group", op: "and" | "or", neg, items}; leaf: {t: "leaf", neg, node}.
  // A "where" clause is a group too. A group of one item is that item.

  function fromTree(n) {
    if (n.node === "not") {
      const inner = n.arg.node === "not"
        ? { t: "group", op: "and", neg: false, items: [fromTree(n.arg)] } : fromTree(n.arg);
      inner.neg = !inner.neg;
      return inner;
    }
    if (n.node === "and" || n.node === "or") {
      return { t: "group", op: n.node, neg: false, items: n.args.map(fromTree) };
    }
    const node = clone(n);
    if (node.where) node.where = asGroup(fromTree(node.where));
    return { t: "leaf", neg: false, node };
  }

  const asGroup = (m) => (m.t === "group" && !m.neg ? m
    : { t: "group", op: "and", neg: false, items: [m] });

  class Incomplete extends Error {}

  function toTree(m) {
    let tree;
    if (m.t === "group") {
      if (!m.items.length) throw new Incomplete("a group has no condition: add one or remove it");
      const args = m.items.map(toTree);
      tree = args.length === 1 ? args[0] : { node: m.op, args };
    } else {
      tree = clone(m.node);
      if (m.node.where) {
        if (m.node.where.items.length) tree.where = toTree(m.node.where);
        else delete tree.where;
      }
    }
    return m.neg ? { node: "not", arg: tree } : tree;
  }

  // -- literal values ----------------------------------------------------------

  function valueType(v) {
    if (typeof v === "number") return "number";
    if (typeof v === "boolean") return "boolean";
    if (v && typeof v === "object") {
      if ("date" in v) return "date";
      if ("datetime" in v) return "datetime";
      if ("amount" in v) return "relative";
    }
    return "text";
  }

  function valueText(v) {
    if (v === null || v === undefined) return "";
    if (typeof v !== "object") return String(v);
    if ("date" in v) return v.date;
    if ("datetime" in v) return v.datetime;
    if ("amount" in v) {
      return `${v.amount} ${v.unit} ${v.direction === "from_now" ? "from now" : "ago"}`;
    }
    return "";
  }

  const RELATIVE = /^\s*(\d+)\s*(minute|hour|day|week)s?\s+(ago|from\s+now)\s*$/i;

  function parseValue(text, type) {
    const t = text.trim();
    if (type === "number") {
      const n = Number(t);
      if (t === "" || !Number.isFinite(n)) throw new Incomplete(`"${text}" is not a number`);
      return n;
    }
    if (type === "boolean") return /^(true|yes|1)$/i.test(t);
    if (type === "date") return { date: t };
    if (type === "datetime") return { datetime: t };
    if (type === "relative") {
      const m = RELATIVE.exec(t);
      if (!m) throw new Incomplete(`"${text}": write e.g. "30 days ago" or "7 days from now"`);
      return { amount: Number(m[1]), unit: `${m[2].toLowerCase()}s`,
               direction: m[3].toLowerCase() === "ago" ? "ago" : "from_now" };
    }
    return text;
  }

  // -- what a leaf row shows, per node ---------------------------------------

  function leafKind(node) {
    if (["compare", "exists", "between", "date_within", "anniversary"].includes(node.node)) {
      return (node.field || "").startsWith("account.") ? "account" : "profile";
    }
    if (["performed", "aggregate", "last_performed", "in_segment", "consented", "bucket"]
      .includes(node.node)) {
      return node.node;
    }
    return "other";
  }

  function attrOp(node) {
    switch (node.node) {
      case "compare": return node.op;
      case "exists": return node.negated ? "not exists" : "exists";
      case "between": return "between";
      case "date_within": return `within ${node.window.direction}`;
      case "anniversary": return `anniversary in ${node.direction}`;
      default: return "=";
    }
  }

  // The node an attribute row means once its operator changes (values kept where they fit).
  function withAttrOp(node, op) {
    const field = node.field;
    const old = node.node === "compare" ? node.value : node.node === "between" ? node.low : "";
    const scalar = Array.isArray(old) ? (old[0] ?? "") : old;
    if (op === "exists" || op === "not exists") return { node: "exists", field, negated: op !== "exists" };
    if (op === "between") return { node: "between", field, low: scalar, high: node.high ?? scalar };
    if (op.startsWith("within ")) {
      const w = node.window || { amount: 30, unit: "days" };
      return { node: "date_within", field, window: { window: "relative",
        direction: op.slice(7), amount: w.amount, unit: w.unit } };
    }
    if (op.startsWith("anniversary in ")) {
      return { node: "anniversary", field, direction: op.slice(15), days: node.days ?? 7 };
    }
    const list = op === "in" || op === "not in";
    return { node: "compare", field, op,
             value: list ? (Array.isArray(old) ? old : [scalar]) : scalar };
  }

  // -- the builder --------------------------------------------------------------

  function createBuilder({ onChange, segmentId }) {
    let model = null; // the root group
    let lastTree = null; // JSON of the tree last loaded or sent
    const choices = { contact: {}, account: {}, events: {}, eventTypes: [], declared: {},
                      segments: [] };
    let timezone = "UTC";
    const status = h("div", { id: "builder-status", class: "builder-status", role: "status",
                              "aria-live": "polite" });
    const root = h("div", { id: "builder-root", class: "builder-root" });
    const lists = h("div", { hidden: true });
    const el = h("section", { id: "builder", class: "builder", "aria-labelledby": "builder-title" },
      h("div", { class: "row" },
        h("h2", { id: "builder-title" }, "Condition builder"),
        h("p", { class: "hint" }, "Edits here rewrite the formula text above (written by the " +
          "server's formatter); text typed there comes back here. Dates and windows are read " +
          "in the segment's time zone: ", h("strong", { id: "builder-tz" }, timezone), ".")),
      status, root, lists);

    const emit = () => {
      let tree;
      try {
        tree = toTree(model);
      } catch (error) {
        if (!(error instanceof Incomplete)) throw error;
        setStatus("incomplete", error.message);
        return;
      }
      lastTree = JSON.stringify(tree);
      setStatus("pending", "Updating the formula…");
      onChange(tree);
    };

    function setStatus(state, message) {
      el.dataset.state = state;
      put(status, message ? h("p", { class: state === "ok" ? "muted small"
        : state === "pending" ? "muted small" : "error" }, message) : null);
    }

    // Re-render, keeping the focus on the control with the same id (or the one asked).
    function render(focusId) {
      const active = focusId || document.activeElement?.id;
      put(root, model ? groupView(model, [], null) : h("p", { class: "muted" }, "…"));
      const again = active && document.getElementById(active);
      if (again && root.contains(again)) again.focus();
    }

    const idOf = (path, part) => `b-${path.join("-") || "root"}-${part}`;
    const nameOf = (path) => (path.length
      ? path.map((i) => (typeof i === "number" ? i + 1 : i)).join(".") : "top");

    function datalist(id, names) {
      return h("datalist", { id }, names.map((n) => h("option", { value: n })));
    }

    // The properties of one event type: seen on interactions, and declared.
    const propsOf = (type) => [...new Set([...Object.keys(choices.events[type] || {}),
                                           ...(choices.declared[type] || [])])].sort();
    const propsList = (type) => `b-props-${String(type).replace(/[^A-Za-z0-9_-]/g, "_")}`;

    function refreshLists() {
      const types = [...new Set([...Object.keys(choices.events), ...choices.eventTypes])];
      put(lists,
        datalist("b-contact-fields", Object.keys(choices.contact).sort()),
        datalist("b-channels", ["email", "sms", "push", "whatsapp"]),
        datalist("b-account-fields", Object.keys(choices.account).sort().map((f) => `account.${f}`)),
        types.map((t) => datalist(propsList(t), propsOf(t))));
    }

    // inWhere: a group nested in a where clause (its conditions are event properties).
    function groupView(g, path, parent, inWhere = false) {
      const where = parent === "where" || inWhere;
      const isRoot = parent === null || parent === "where";
      const op = h("select", { id: idOf(path, "op"), "aria-label": `Group ${nameOf(path)}: match` },
        h("option", { value: "and" }, "all of (and)"), h("option", { value: "or" }, "any of (or)"));
      op.value = g.op;
      op.addEventListener("change", () => { g.op = op.value; emit(); });
      const items = g.items.map((item, i) => h("li", { class: "b-item" },
        item.t === "group"
          ? groupView(Object.assign(item, { eventType: g.eventType }), [...path, i], g, where)
          : leafView(item, [...path, i], g, where)));
      const add = (kind) => () => {
        g.items.push(kind === "group"
          ? { t: "group", op: g.op === "and" ? "or" : "and", neg: false, items: [newLeaf(where ? "property" : "profile")] }
          : newLeaf(kind));
        render(idOf([...path, g.items.length - 1], kind === "group" ? "op" : "kind"));
        emit();
      };
      return h("fieldset", { class: `b-group${isRoot ? " b-root" : ""}`,
                             dataset: { path: nameOf(path), op: g.op, neg: String(g.neg) } },
        h("legend", {}, isRoot ? (where ? "Where" : "Condition") : `Group ${nameOf(path)}`),
        h("div", { class: "b-head" },
          isRoot ? null : negBox(g, path),
          h("label", { for: op.id, class: "sr-only" }, "Match"), op,
          isRoot ? null : h("button", { type: "button", class: "link b-remove",
            "aria-label": `Remove group ${nameOf(path)}`,
            onclick: () => {
              parent.items.splice(path[path.length - 1], 1);
              render(idOf(path.slice(0, -1), "add")); // focus stays in the group
              emit();
            } },
          "Remove")),
        h("ol", { class: "b-items" }, items),
        h("div", { class: "b-add" },
          h("button", { type: "button", id: idOf(path, "add"), onclick: add(where ? "property" : "profile") },
            where ? "+ Property filter" : "+ Condition"),
          h("button", { type: "button", id: idOf(path, "add-group"), onclick: add("group") },
            "+ Group")));
    }

    function negBox(m, path) {
      const box = h("input", { type: "checkbox", id: idOf(path, "not") });
      box.checked = Boolean(m.neg);
      box.addEventListener("change", () => { m.neg = box.checked; emit(); });
      return h("span", { class: "b-not" }, box, h("label", { for: box.id }, "not"));
    }

    function newLeaf(kind) {
      const firstEvent = choices.eventTypes[0] || "purchase";
      const node = {
        profile: { node: "compare", field: "", op: "=", value: "" },
        property: { node: "compare", field: "", op: "=", value: "" },
        account: { node: "compare", field: "account.", op: "=", value: "" },
        performed: { node: "performed", event_type: firstEvent, count_op: "at least", count: 1,
                     window: { window: "relative", direction: "last", amount: 30, unit: "days" } },
        aggregate: { node: "aggregate", func: "sum", property: "", event_type: firstEvent,
                     window: { window: "relative", direction: "last", amount: 30, unit: "days" },
                     op: ">=", value: 0 },
        last_performed: { node: "last_performed", event_type: firstEvent, op: "after",
                          at: { amount: 30, unit: "days", direction: "ago" } },
        in_segment: { node: "in_segment",
                      segment_id: choices.segments.find((s) => s !== segmentId()) || "" },
        consented: { node: "consented", channel: "email", purpose: "commercial" },
        bucket: { node: "bucket", seed: segmentId() || "split", op: "<", value: 1000 },
      }[kind];
      return { t: "leaf", neg: false, node };
    }

    // A select / input bound to one property of a node.
    function control(tag, path, part, label, value, onInput, extra = {}) {
      const { options, ...props } = extra;
      // Every control says which condition it belongs to (rows repeat).
      const named = label.startsWith("Condition ") ? label : `Condition ${nameOf(path)}: ${label}`;
      const input = h(tag, { id: idOf(path, part), "aria-label": named, ...props },
        ...(options || []).map(([v, text]) => h("option", { value: v }, text)));
      input.value = value ?? "";
      input.addEventListener(tag === "select" ? "change" : "input", () => onInput(input.value));
      return input;
    }
    const opts = (values) => values.map((v) => (Array.isArray(v) ? v : [v, v]));

    function valueEditor(path, part, label, value, set, { list = false, fieldType } = {}) {
      const items = list ? (Array.isArray(value) ? value : [value]) : [value];
      const type = items.length && items[0] !== "" ? valueType(items[0]) : (fieldType || "text");
      const text = items.map(valueText).join(", ");
      const input = control("input", path, part, `${label}${list ? " (comma-separated)" : ""}`,
        text, () => commit(), { autocomplete: "off", spellcheck: "false", class: "b-value" });
      const typeSel = control("select", path, `${part}-type`, `${label}: type`, type,
        () => commit(), { options: VALUE_TYPES });
      function commit() {
        try {
          const raw = list ? input.value.split(",").map((x) => x.trim()).filter((x) => x !== "")
            : [input.value];
          const parsed = raw.map((x) => parseValue(x, typeSel.value));
          set(list ? parsed : parsed[0]);
          emit();
        } catch (error) {
          if (!(error instanceof Incomplete)) throw error;
          setStatus("incomplete", error.message);
        }
      }
      return [input, typeSel];
    }

    function windowEditor(node, path) {
      const w = node.window;
      const kind = control("select", path, "window", "Window", w.window === "relative" ? "relative" : w.window,
        (v) => {
          node.window = v === "ever" ? { window: "ever" }
            : v === "range" ? { window: "range", start: { date: today(-30) }, end: { date: today(0) } }
            : { window: "relative", direction: "last", amount: 30, unit: "days" };
          render(idOf(path, "window")); emit();
        }, { options: [["relative", "within last"], ["ever", "ever"], ["range", "between dates"]] });
      if (w.window === "relative") {
        return [kind,
          control("input", path, "amount", "Window length", String(w.amount),
            (v) => { w.amount = Math.max(0, parseInt(v, 10) || 0); emit(); },
            { type: "number", min: "0", class: "b-num" }),
          control("select", path, "unit", "Window unit", w.unit, (v) => { w.unit = v; emit(); },
            { options: opts(UNITS) })];
      }
      if (w.window === "range") {
        const dateOf = (x) => x.date || (x.datetime || "").slice(0, 10);
        return [kind,
          control("input", path, "start", "From date", dateOf(w.start),
            (v) => { w.start = { date: v }; emit(); }, { type: "date" }),
          h("span", {}, "and"),
          control("input", path, "end", "To date", dateOf(w.end),
            (v) => { w.end = { date: v }; emit(); }, { type: "date" })];
      }
      return [kind];
    }

    function eventSelect(node, path) {
      const names = [...new Set([...choices.eventTypes, node.event_type])].filter(Boolean);
      return control("select", path, "event", "Event type", node.event_type, (v) => {
        node.event_type = v;
        render(idOf(path, "event")); // the property lists follow the type
        emit();
      }, { options: opts(names) });
    }

    function whereView(node, path) {
      if (node.where) node.where.eventType = node.event_type;
      if (!node.where) {
        return h("button", { type: "button", id: idOf(path, "add-where"), class: "link",
          onclick: () => {
            node.where = { t: "group", op: "and", neg: false, items: [newLeaf("property")] };
            render(idOf([...path, "w", 0], "field")); emit();
          } }, "+ where (event properties)");
      }
      return h("div", { class: "b-where" }, groupView(node.where, [...path, "w"], "where"),
        h("button", { type: "button", class: "link b-remove", id: idOf(path, "remove-where"),
          onclick: () => { delete node.where; render(idOf(path, "add-where")); emit(); } },
        "Remove the where clause"));
    }

    function leafView(m, path, parent, inWhere) {
      const node = m.node;
      const kind = inWhere ? "property" : leafKind(node);
      const remove = h("button", { type: "button", class: "link b-remove",
        "aria-label": `Remove condition ${nameOf(path)}`,
        onclick: () => {
          parent.items.splice(path[path.length - 1], 1);
          render(idOf(path.slice(0, -1), "add")); // focus stays in the group
          emit();
        } }, "Remove");
      const parts = [];
      if (!inWhere) {
        parts.push(negBox(m, path));
        parts.push(kind === "other"
          ? h("span", { class: "b-kind" }, node.node)
          : control("select", path, "kind", `Condition ${nameOf(path)}: type`, kind, (v) => {
            parent.items[path[path.length - 1]] = { ...newLeaf(v), neg: m.neg };
            render(idOf(path, "kind")); emit();
          }, { options: KINDS }));
      }
      if (kind === "profile" || kind === "account" || kind === "property") {
        const scope = kind === "property" ? propsList(parent.eventType)
          : kind === "account" ? "b-account-fields" : "b-contact-fields";
        const field = control("input", path, "field", kind === "property" ? "Property" : "Attribute",
          node.field, (v) => {
            node.field = v.trim();
            // The value's type follows the field's type seen, until a value is typed.
            const typeSel = document.getElementById(idOf(path, "value-type"));
            const valueIn = document.getElementById(idOf(path, "value"));
            if (typeSel && valueIn && !valueIn.value) typeSel.value = fieldType();
            emit();
          },
          { list: scope, autocomplete: "off", spellcheck: "false", class: "b-field" });
        const fieldType = () => {
          const seen = kind === "account" ? choices.account[node.field.replace(/^account\./, "")]
            : kind === "profile" ? choices.contact[node.field] : null;
          const t = seen && Object.keys(seen)[0];
          return t === "number" || t === "integer" ? "number" : t === "boolean" ? "boolean" : "text";
        };
        const opSel = control("select", path, "op", "Operator", attrOp(node), (v) => {
          m.node = withAttrOp(node, v);
          render(idOf(path, "op")); emit();
        }, { options: opts(kind === "property" ? OPS.concat(["exists", "not exists", "between"]) : ATTR_OPS) });
        parts.push(field, opSel);
        if (node.node === "compare") {
          parts.push(...valueEditor(path, "value", "Value", node.value, (v) => { node.value = v; },
            { list: node.op === "in" || node.op === "not in", fieldType: fieldType() }));
        } else if (node.node === "between") {
          parts.push(...valueEditor(path, "low", "From", node.low, (v) => { node.low = v; },
            { fieldType: fieldType() }), h("span", {}, "and"),
          ...valueEditor(path, "high", "To", node.high, (v) => { node.high = v; },
            { fieldType: fieldType() }));
        } else if (node.node === "date_within") {
          const w = node.window;
          parts.push(control("input", path, "amount", "Window length", String(w.amount),
            (v) => { w.amount = Math.max(0, parseInt(v, 10) || 0); emit(); },
            { type: "number", min: "0", class: "b-num" }),
          control("select", path, "unit", "Window unit", w.unit, (v) => { w.unit = v; emit(); },
            { options: opts(UNITS) }));
        } else if (node.node === "anniversary") {
          parts.push(control("input", path, "days", "Days", String(node.days),
            (v) => { node.days = Math.max(0, parseInt(v, 10) || 0); emit(); },
            { type: "number", min: "0", class: "b-num" }), h("span", {}, "days"));
        }
      } else if (kind === "performed") {
        parts.push(eventSelect(node, path),
          control("select", path, "count-op", "How often", node.count_op ?? "at least",
            (v) => { node.count_op = v; emit(); }, { options: opts(["at least", "at most", "exactly"]) }),
          control("input", path, "count", "Times", String(node.count ?? 1),
            (v) => { node.count = Math.max(0, parseInt(v, 10) || 0); emit(); },
            { type: "number", min: "0", class: "b-num" }),
          h("span", {}, "times"), ...windowEditor(node, path));
      } else if (kind === "aggregate") {
        parts.push(control("select", path, "func", "Aggregate", node.func,
          (v) => { node.func = v; emit(); },
          { options: opts(["sum", "avg", "min", "max", "count distinct", "most frequent"]) }),
        control("input", path, "property", "Event property", node.property,
          (v) => { node.property = v.trim(); emit(); },
          { list: propsList(node.event_type), autocomplete: "off", spellcheck: "false",
            class: "b-field" }),
        h("span", {}, "of"), eventSelect(node, path), ...windowEditor(node, path),
        control("select", path, "op", "Operator", node.op, (v) => {
          const list = v === "in" || v === "not in";
          if (list !== Array.isArray(node.value)) node.value = list ? [node.value] : (node.value[0] ?? "");
          node.op = v; render(idOf(path, "op")); emit();
        }, { options: opts(OPS) }),
        ...valueEditor(path, "value", "Value", node.value, (v) => { node.value = v; },
          { list: node.op === "in" || node.op === "not in", fieldType: "number" }));
      } else if (kind === "last_performed") {
        parts.push(eventSelect(node, path),
          control("select", path, "when", "Before or after", node.op,
            (v) => { node.op = v; emit(); }, { options: opts(["after", "before"]) }),
          ...valueEditor(path, "at", "Time", node.at, (v) => { node.at = v; }, { fieldType: "relative" }));
      } else if (kind === "in_segment") {
        const ids = [...new Set([...choices.segments.filter((s) => s !== segmentId()),
                                 node.segment_id])].filter(Boolean);
        parts.push(control("select", path, "segment", "Segment", node.segment_id,
          (v) => { node.segment_id = v; emit(); }, { options: opts(ids) }));
      } else if (kind === "consented") {
        parts.push(control("select", path, "purpose", "Purpose", node.purpose || "commercial",
          (v) => { node.purpose = v; emit(); }, { options: opts(["commercial", "transactional"]) }),
        control("input", path, "channel", "Channel", node.channel,
          (v) => { node.channel = v.trim(); emit(); },
          { list: "b-channels", autocomplete: "off", spellcheck: "false", class: "b-field" }),
        control("input", path, "topic", "Topic (empty: the whole channel)", node.topic || "",
          (v) => { if (v.trim()) node.topic = v.trim(); else delete node.topic; emit(); },
          { autocomplete: "off", spellcheck: "false", class: "b-field", placeholder: "topic" }));
      } else if (kind === "bucket") {
        parts.push(control("input", path, "seed", "Seed", node.seed,
          (v) => { node.seed = v.trim(); emit(); },
          { autocomplete: "off", spellcheck: "false", class: "b-field" }),
        control("select", path, "op", "Operator", node.op, (v) => { node.op = v; emit(); },
          { options: opts(["<", "<=", ">", ">=", "=", "!="]) }),
        control("input", path, "bucket", "Bucket (0-10000; < 1000 is 10 %)", String(node.value),
          (v) => { node.value = Math.max(0, parseInt(v, 10) || 0); emit(); },
          { type: "number", min: "0", max: "10000", class: "b-num" }));
      } else {
        parts.push(h("code", { class: "b-other" }, JSON.stringify(node)),
          h("span", { class: "muted small" }, " (edit it in the formula text)"));
      }
      parts.push(remove);
      const row = h("div", { class: "b-leaf", dataset: { path: nameOf(path), node: node.node,
                                                           kind, neg: String(m.neg) } },
        h("div", { class: "b-row" }, parts));
      if (["performed", "aggregate", "last_performed"].includes(kind)) row.append(whereView(node, path));
      return row;
    }

    return {
      el,
      setChoices({ fields, eventTypes, segments }) {
        const f = (fields && fields.fields) || {};
        choices.contact = f.contact || {};
        choices.account = f.account || {};
        choices.events = Object.fromEntries(Object.entries(f).filter(([k]) => k.startsWith("event:"))
          .map(([k, v]) => [k.slice(6), v]));
        choices.eventTypes = (eventTypes || []).map((t) => t.name);
        choices.declared = Object.fromEntries((eventTypes || []).map(
          (t) => [t.name, Object.keys(t.properties || {})]));
        choices.segments = segments || [];
        refreshLists();
        if (model) render();
      },
      setTimezone(tz) {
        timezone = tz || "UTC";
        const box = el.querySelector("#builder-tz");
        if (box) box.textContent = timezone;
      },
      // The tree the server parsed from the formula text (null: no formula).
      load(tree) {
        const json = tree ? JSON.stringify(tree) : null;
        if (model && json === lastTree) { setStatus("ok", null); return; }
        lastTree = json;
        model = tree ? asGroup(fromTree(tree)) : { t: "group", op: "and", neg: false, items: [] };
        render();
        setStatus("ok", null);
      },
      // The formula text does not parse: the builder keeps the last valid tree.
      stale() {
        setStatus("stale", "The formula text has an error: the builder shows the last valid " +
          "condition (an edit here replaces the text).");
      },
      // The server's answer to the tree sent.
      accepted() { setStatus("ok", null); },
      refused(message) { setStatus("refused", `Not applied to the formula: ${message}`); },
    };
  }

  function today(offsetDays) {
    return new Date(Date.now() + offsetDays * 86400e3).toISOString().slice(0, 10);
  }

  C.createBuilder = createBuilder;
})();

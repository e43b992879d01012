// segmentflow console: the insights page of a segment (#/segments/ID/insights).
// Size over time and joins / leaves per hour or day (inline SVG drawn here,
// no chart library), the causes of change, and the overlap with other
// segments. Data: GET /segments/ID/insights (the persisted series) and
// GET /segments/ID/overlap; it follows the segment's live changes.
"use strict";

(() => {
  const C = window.segmentflowConsole;
  if (!C) return;
  const { h, put, fmt, api, seg, heading, coverageNote, showError, follow, debounce } = C;

  const SVG = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) el.setAttribute(k, String(v));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }

  // Buckets per range; the first of each step is the API's default.
  const RANGES = {
    hour: [[48, "48 hours"], [168, "7 days"], [720, "30 days"], [2160, "90 days"]],
    day: [[30, "30 days"], [90, "90 days"]],
  };
  const WIDTH_MS = { hour: 3600e3, day: 86400e3 };
  // Drawn at the width it is shown (text keeps its size on a phone).
  let W = 800;
  const H = 170, L = 52, R = 14, T = 12, B = 28;

  const label = (start, step) => (step === "day" ? start.slice(0, 10)
    : start.slice(5, 16).replace("T", " "));

  function xOf(i, n) {
    return L + (n > 1 ? (i * (W - L - R)) / (n - 1) : (W - L - R) / 2);
  }

  function axes(points, step, top, bottom, topText, bottomText) {
    const n = points.length;
    return [
      s("line", { x1: L, x2: W - R, y1: bottom, y2: bottom, class: "axis" }),
      s("line", { x1: L, x2: L, y1: top, y2: bottom, class: "axis" }),
      s("text", { x: L - 6, y: top + 4, class: "tick", "text-anchor": "end" }, topText),
      s("text", { x: L - 6, y: bottom, class: "tick", "text-anchor": "end" }, bottomText),
      n ? s("text", { x: L, y: H - 8, class: "tick" }, label(points[0].start, step)) : null,
      n > 1 ? s("text", { x: W - R, y: H - 8, class: "tick", "text-anchor": "end" },
        label(points[n - 1].start, step)) : null,
    ];
  }

  // Size at the end of each bucket: a line with one point per bucket.
  function sizeChart(points, step) {
    const n = points.length;
    const max = Math.max(1, ...points.map((p) => p.size));
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const path = points.map((p, i) => `${i ? "L" : "M"}${xOf(i, n).toFixed(1)},${y(p.size).toFixed(1)}`)
      .join(" ");
    const last = n ? points[n - 1].size : 0;
    return s("svg", { id: "size-chart", class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
                      "aria-labelledby": "size-chart-title", "data-points": n,
                      "data-last-size": last, preserveAspectRatio: "xMidYMid meet" },
      s("title", { id: "size-chart-title" },
        `Members at the end of each ${step}: from ${n ? points[0].size : 0} to ${last}`),
      axes(points, step, T, H - B, fmt(max), "0"),
      n ? s("path", { d: path, class: "size-line" }) : null,
      points.map((p, i) => s("circle", { cx: xOf(i, n).toFixed(1), cy: y(p.size).toFixed(1),
                                          r: n > 200 ? 1.2 : 2.6, class: "point",
                                          "data-size": p.size },
        s("title", {}, `${label(p.start, step)}: ${fmt(p.size)} members`))));
  }

  // Joins above the middle line, leaves below it.
  function flowChart(points, step) {
    const n = points.length;
    const max = Math.max(1, ...points.map((p) => Math.max(p.joins, p.leaves)));
    const mid = T + (H - T - B) / 2;
    const half = (H - T - B) / 2;
    const slot = (W - L - R) / Math.max(n, 1);
    const bar = Math.max(1, slot * 0.7);
    const x = (i) => L + i * slot + (slot - bar) / 2;
    return s("svg", { id: "flow-chart", class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
                      "aria-labelledby": "flow-chart-title", "data-points": n },
      s("title", { id: "flow-chart-title" }, `Joins (up) and leaves (down) per ${step}`),
      axes(points, step, T, H - B, `+${fmt(max)}`, `−${fmt(max)}`),
      s("line", { x1: L, x2: W - R, y1: mid, y2: mid, class: "axis" }),
      points.map((p, i) => [
        p.joins ? s("rect", { x: x(i).toFixed(1), y: (mid - (half * p.joins) / max).toFixed(1),
                              width: bar.toFixed(1), height: ((half * p.joins) / max).toFixed(1),
                              class: "bar-join" },
          s("title", {}, `${label(p.start, step)}: ${fmt(p.joins)} joined`)) : null,
        p.leaves ? s("rect", { x: x(i).toFixed(1), y: mid.toFixed(1), width: bar.toFixed(1),
                               height: ((half * p.leaves) / max).toFixed(1), class: "bar-leave" },
          s("title", {}, `${label(p.start, step)}: ${fmt(p.leaves)} left`)) : null,
      ]));
  }

  const causeText = (causes) => Object.entries(causes)
    .map(([kind, c]) => `${kind} ${c.joined ? `+${c.joined}` : ""}${c.joined && c.left ? " " : ""}` +
      `${c.left ? `−${c.left}` : ""}`).join(", ");

  function causesTable(causes) {
    const kinds = Object.keys(causes);
    if (!kinds.length) return h("p", { class: "empty", id: "causes-table" }, "No change in this range.");
    return h("table", { class: "table", id: "causes-table" },
      h("caption", { class: "sr-only" }, "Changes by cause"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Cause"),
        h("th", { scope: "col", class: "num" }, "Joined"),
        h("th", { scope: "col", class: "num" }, "Left"))),
      h("tbody", {}, kinds.map((kind) => h("tr", { dataset: { cause: kind } },
        h("td", { "data-label": "Cause" }, kind),
        h("td", { "data-label": "Joined", class: "num" }, fmt(causes[kind].joined)),
        h("td", { "data-label": "Left", class: "num" }, fmt(causes[kind].left))))));
  }

  function seriesTable(points, step) {
    const rows = points.filter((p) => p.joins || p.leaves);
    return h("details", { id: "series-details" }, h("summary", {},
      `As a table (${rows.length} ${step}${rows.length === 1 ? "" : "s"} with changes)`),
      h("table", { class: "table", id: "series-table" },
        h("caption", { class: "sr-only" }, `Joins, leaves and size per ${step}`),
        h("thead", {}, h("tr", {}, ["Start (UTC)", "Joined", "Left", "Size at end", "Causes"].map(
          (c, i) => h("th", { scope: "col", class: i && i < 4 ? "num" : null }, c)))),
        h("tbody", {}, rows.map((p) => h("tr", {},
          h("td", { "data-label": "Start" }, label(p.start, step)),
          h("td", { "data-label": "Joined", class: "num" }, fmt(p.joins)),
          h("td", { "data-label": "Left", class: "num" }, fmt(p.leaves)),
          h("td", { "data-label": "Size", class: "num" }, fmt(p.size)),
          h("td", { "data-label": "Causes" }, causeText(p.causes)))))));
  }

  function overlapTable(answer) {
    const ids = answer.segments;
    return h("div", { class: "scroll-x" }, coverageNote(answer),
      h("table", { class: "table matrix", id: "overlap-matrix" },
        h("caption", {}, "Contacts in both segments (share of the row's members)"),
        h("thead", {}, h("tr", {}, h("td", {}), ids.map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, ids.map((r, i) => h("tr", {},
          h("th", { scope: "row" }, r),
          ids.map((c, j) => {
            const n = answer.matrix[i][j];
            const size = answer.sizes[i];
            return h("td", { class: "num", dataset: { row: r, col: c, count: n } },
              fmt(n), size && i !== j ? h("span", { class: "muted small" },
                ` ${Math.round((100 * n) / size)} %`) : null);
          }))))));
  }

  // What the members did: interactions per member per day, by event type
  // (GET /segments/ID/engagement, from the retained interaction history).
  function engagementTable(answer) {
    if (!answer.series.length) {
      return h("p", { class: "muted", id: "engagement-empty" },
        `No interaction of the ${fmt(answer.members)} members in the last ${answer.days} days.`);
    }
    return h("table", { class: "table", id: "engagement-table" },
      h("caption", {}, `Interactions per member per day, ${fmt(answer.members)} members ` +
        `(last ${answer.days} days, UTC)`),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Day"),
        ...answer.types.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, ...answer.series.map((row) => h("tr", { dataset: { day: row.day } },
        h("th", { scope: "row" }, row.day),
        ...answer.types.map((t) => h("td", { dataset: { type: t } },
          row.per_member[t] === undefined ? "–" : String(row.per_member[t])))))));
  }

  function insightsView(main, params, signal) {
    const id = params.id;
    let step = "hour";
    let buckets = RANGES.hour[0][0];
    const stepSelect = h("select", { id: "insights-step" },
      h("option", { value: "hour" }, "hour"), h("option", { value: "day" }, "day"));
    const rangeSelect = h("select", { id: "insights-range" });
    const summary = h("p", { id: "insights-summary", role: "status" }, "Loading…");
    const charts = h("div", { id: "insights-charts" });
    const causesBox = h("div", {});
    const tableBox = h("div", {});
    const others = h("fieldset", { class: "checks", id: "overlap-segments" },
      h("legend", {}, "Compare with"));
    const overlapBox = h("div", { id: "overlap-result", "aria-live": "polite" });
    const engagementBox = h("div", { id: "engagement-result" }, h("p", { class: "muted" },
      "Loading…"));
    let timer = null;

    const fillRanges = () => {
      put(rangeSelect, RANGES[step].map(([n, text]) => h("option", { value: String(n) }, text)));
      rangeSelect.value = String(buckets);
    };

    const fetchSeries = async () => {
      const first = await api("GET", `${seg(id)}/insights?step=${step}`, undefined, { signal });
      if (buckets === RANGES[step][0][0]) return first;
      const to = new Date(first.to);
      const from = new Date(to.getTime() - (buckets - 1) * WIDTH_MS[step]);
      const q = new URLSearchParams({ step, from: from.toISOString(), to: to.toISOString() });
      return api("GET", `${seg(id)}/insights?${q}`, undefined, { signal });
    };

    const load = async () => {
      clearTimeout(timer);
      const r = await fetchSeries();
      if (signal.aborted) return;
      summary.dataset.size = String(r.size);
      summary.dataset.joins = String(r.joins);
      summary.dataset.leaves = String(r.leaves);
      summary.dataset.behind = String(r.behind);
      put(summary, h("strong", {}, `${fmt(r.size)} members`), " now · ",
        h("span", { class: "joins" }, `+${fmt(r.joins)} joined`), ", ",
        h("span", { class: "leaves" }, `−${fmt(r.leaves)} left`),
        ` from ${label(r.from, step)} to ${label(r.to, step)} UTC (per ${step}; kept ` +
        `${r.retention_days} days)`,
        r.behind ? h("span", { class: "warning" }, ` · catching up: ${fmt(r.behind)} changes ` +
          "not counted yet") : null,
        r.history_complete ? null : h("span", { class: "warning" }, " · sizes count only the " +
          "changes this worker folded (the topic had already dropped older ones)"));
      W = Math.max(300, Math.min(1100, (charts.clientWidth || 826) - 26));
      put(charts,
        h("figure", {}, h("figcaption", {}, `Size at the end of each ${step}`),
          sizeChart(r.points, step)),
        h("figure", {}, h("figcaption", {}, `Joins and leaves per ${step}`),
          flowChart(r.points, step)));
      put(causesBox, causesTable(r.causes));
      put(tableBox, seriesTable(r.points, step));
      // Still folding (a worker that just started): look again shortly.
      if (r.behind !== 0) timer = setTimeout(() => load().catch(showError), 1000);
    };
    signal.addEventListener("abort", () => clearTimeout(timer));

    stepSelect.addEventListener("change", () => {
      step = stepSelect.value;
      buckets = RANGES[step][0][0];
      fillRanges();
      load().catch(showError);
    });
    rangeSelect.addEventListener("change", () => {
      buckets = Number(rangeSelect.value);
      load().catch(showError);
    });

    const compare = async () => {
      const chosen = [...others.querySelectorAll("input:checked")].map((i) => i.value);
      if (!chosen.length) {
        put(overlapBox, h("p", { class: "muted" }, "Choose at least one segment."));
        return;
      }
      put(overlapBox, h("p", { class: "muted" }, "Counting…"));
      const q = new URLSearchParams({ with: chosen.join(",") });
      put(overlapBox, overlapTable(await api("GET", `${seg(id)}/overlap?${q}`, undefined,
        { signal })));
    };

    // The series moves with the segment's changes (re-read once they settle).
    const refresh = debounce(() => load().catch(showError), 1000);
    follow(id, signal, { onChange: refresh, onState: () => {} });
    signal.addEventListener("abort", () => refresh.cancel());

    fillRanges();
    put(main,
      heading(`Insights of ${id}`),
      h("p", {}, h("a", { href: `#/segments/${encodeURIComponent(id)}` }, "← Segment"), " · ",
        h("a", { href: `#/segments/${encodeURIComponent(id)}/members` }, "Members"), " · ",
        h("a", { href: `#/feed/${encodeURIComponent(id)}` }, "Live feed")),
      h("form", { class: "filters insights-filters", onsubmit: (e) => e.preventDefault() },
        h("div", { class: "field" }, h("label", { for: "insights-step" }, "Step"), stepSelect),
        h("div", { class: "field" }, h("label", { for: "insights-range" }, "Range"), rangeSelect)),
      summary, charts,
      h("div", { class: "columns" },
        h("section", { "aria-labelledby": "causes-title" },
          h("h2", { id: "causes-title" }, "Causes of change"), causesBox, tableBox),
        h("section", { "aria-labelledby": "overlap-title" },
          h("h2", { id: "overlap-title" }, "Overlap with other segments"),
          h("form", { id: "overlap-form", onsubmit: (e) => {
            e.preventDefault();
            compare().catch(showError);
          } }, others, h("button", { type: "submit", id: "overlap-compare" }, "Compare")),
          overlapBox)),
      h("section", { "aria-labelledby": "engagement-title" },
        h("h2", { id: "engagement-title" }, "Engagement of the members"), engagementBox));

    const engagement = api("GET", `${seg(id)}/engagement?days=30`, undefined, { signal })
      .then((answer) => put(engagementBox, engagementTable(answer)));

    const segments = api("GET", "/segments", undefined, { signal }).then((answer) => {
      const head = main.querySelector("h1");
      const me = answer.segments.find((x) => x.id === id);
      if (head && me && me.name) head.textContent = `Insights of ${me.name}`;
      const rest = answer.segments.filter((x) => x.id !== id).slice(0, 50);
      others.append(...rest.map((x) => h("label", { class: "check" },
        h("input", { type: "checkbox", value: x.id, name: "overlap" }), ` ${x.name || x.id}`)));
      if (!rest.length) others.append(h("p", { class: "muted" }, "No other segment."));
    });
    return Promise.all([load(), segments, engagement]);
  }

  C.routes.push([/^#\/segments\/([^/]+)\/insights$/, insightsView, "segments",
    (p) => `Insights of ${p.id}`]);
})();

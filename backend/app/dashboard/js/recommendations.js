// Recommendations: the ranked table of one exchange and horizon, in the API's order until a column header is clicked
// (click again to reverse); the label filter is the API's own label= parameter. Each row links to its symbol page.
(function (D) {
  "use strict";
  const { h } = D.dom;
  const f = D.fmt;
  const TOP_N = 100; // the API's maximum; the default universe is 100 symbols
  const sort = { key: null, descending: false }; // kept while the dashboard is open

  const COLUMNS = [
    { key: "rank", name: "#", value: (r) => r.rank, cell: (r) => String(r.rank), cls: "num" },
    { key: "symbol", name: "Symbol", value: (r) => r.symbol, cell: (r, ctx) => h("a", { href: D.symbols.href(r.symbol, { horizon: ctx.horizon }) }, r.symbol) },
    { key: "label", name: "Label", value: (r) => -D.labels.all.indexOf(r.recommendation_strength), cell: (r) => D.labels.badge(r.recommendation_strength) },
    { key: "score", name: "Score", value: (r) => r.total_score, cell: (r) => f.number(r.total_score, 3), cls: "num" },
    { key: "probability", name: "P(beat)", value: (r) => r.probability_outperform, cell: (r) => f.share(r.probability_outperform), cls: "num", title: "probability of beating the universe over the horizon" },
    { key: "price", name: "Price", value: (r) => r.current_price, cell: (r) => f.price(r.current_price), cls: "num" },
    { key: "change", name: "24h", value: (r) => r.price_change_24h, cell: (r) => h("span", { class: f.signClass(r.price_change_24h) }, f.percent(r.price_change_24h)), cls: "num" },
    { key: "volume", name: "Volume 24h", value: (r) => r.volume_24h, cell: (r) => f.compact(r.volume_24h), cls: "num wide-only" },
    { key: "reasons", name: "Top reasons", cell: (r) => reasons(r), cls: "reasons wide-only" },
  ];

  function reasons(row) {
    const list = (row.analysis_details && row.analysis_details.reasons) || [];
    return list.length ? h("ul", { class: "reasons" }, list.slice(0, 2).map((text) => h("li", {}, text))) : "–";
  }

  function modelLine(model) {
    if (!model) return "Scores of a run published before per-horizon models.";
    const parts = [`${model.horizon} model: weights ${model.weights_source}`];
    if (model.fitted_at) parts.push(`fitted ${f.time(model.fitted_at)}`);
    if (!f.missing(model.walk_forward_ic)) parts.push(`walk-forward IC ${f.number(model.walk_forward_ic, 3)} (t ${f.number(model.walk_forward_t, 1)})`);
    if (!model.labels_active) parts.push(`labels inactive: ${model.note}`);
    return parts.join(" · ");
  }

  function ordered(rows) {
    const column = COLUMNS.find((c) => c.key === sort.key);
    if (!column || !column.value) return rows;
    const sign = sort.descending ? -1 : 1;
    return [...rows].sort((a, b) => {
      const x = column.value(a);
      const y = column.value(b);
      if (f.missing(x) || f.missing(y)) return f.missing(x) - f.missing(y);
      return sign * (x < y ? -1 : x > y ? 1 : 0) || a.rank - b.rank;
    });
  }

  function header(column, redraw) {
    if (!column.value) return h("th", { class: column.cls }, column.name);
    const active = sort.key === column.key;
    const direction = active ? (sort.descending ? "descending" : "ascending") : "none";
    const click = () => {
      sort.descending = active ? !sort.descending : column.key !== "rank" && column.key !== "symbol";
      sort.key = column.key;
      redraw();
    };
    return h("th", { class: column.cls, "aria-sort": direction, title: column.title },
      h("button", { type: "button", class: "sort", onclick: click, "data-sort": column.key }, column.name));
  }

  function table(rows, ctx) {
    const wrapper = h("div", { class: "table-wrap" });
    const redraw = () => wrapper.replaceChildren(build());
    const build = () => h("table", { class: "data", id: "recommendations-table" },
      h("thead", {}, h("tr", {}, COLUMNS.map((c) => header(c, redraw)))),
      h("tbody", {}, ordered(rows).map((r) => h("tr", { "data-symbol": r.symbol, "data-rank": r.rank },
        COLUMNS.map((c) => h("td", { class: c.cls }, c.cell(r, ctx)))))));
    redraw();
    return wrapper;
  }

  function select(id, label, options, value, onchange) {
    return h("label", { class: "inline" }, label + " ",
      h("select", { id, onchange: (event) => onchange(event.target.value) },
        options.map(([optionValue, text]) => h("option", { value: optionValue, selected: optionValue === value }, text))));
  }

  async function render(root, ctx) {
    const label = ctx.params.get("label") || "";
    const body = await D.api.get("/api/v1/recommendations", {
      exchange: ctx.exchange, horizon: ctx.params.get("horizon"), label, top_n: TOP_N,
    });
    ctx.showRun(body);
    ctx.horizon = body.horizon;
    const go = (name) => (value) => ctx.navigate("recommendations", { horizon: body.horizon, label, [name]: value });
    D.dom.fill(root,
      h("h1", {}, `Recommendations: ${body.exchange}`),
      h("div", { class: "toolbar" },
        select("horizon", "Horizon", body.horizons.map((x) => [x, x]), body.horizon, go("horizon")),
        select("label-filter", "Label", [["", "all labels"], ...D.labels.all.map((x) => [x, x.replace("_", " ")])], label, go("label")),
        h("span", { class: "muted", "data-testid": "row-count" },
          `${body.recommendations.length} of ${body.total_analyzed} analysed symbols`)),
      h("p", { class: "muted", "data-testid": "model" }, modelLine(body.model)),
      body.recommendations.length ? table(body.recommendations, ctx) : h("p", { class: "message" }, "No symbol has this label in the current run.")
    );
  }

  D.views = D.views || {};
  D.views.recommendations = render;
})(window.Dantaro);

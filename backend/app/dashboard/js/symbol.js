// Symbol: candles (1h or 1d) with volume and the served support/resistance levels, the served pivots and volume
// profile (lines the toggles add), the level list and the reference prices, the factor contributions of the symbol's
// score at the chosen horizon, and its past calls from the track record.
(function (D) {
  "use strict";
  const { h } = D.dom;
  const f = D.fmt;
  const TIMEFRAMES = { "1h": 3600000, "1d": 86400000 };
  const CANDLES = 500;
  const toggles = { tiers: true, pivots: true, profile: true, all: false }; // kept while the dashboard is open

  // The body, or null when the API answers 404 (no levels, no scored call, or a server without that route).
  async function optional(path, params) {
    try {
      return await D.api.get(path, params);
    } catch (error) {
      if (error.status === 404) return null;
      throw error;
    }
  }

  function heading(symbol, rec) {
    return h("h1", { class: "symbol-title" }, symbol + " ",
      rec ? D.labels.badge(rec.recommendation_strength) : null,
      rec ? h("span", { class: "price" }, f.price(rec.current_price)) : null,
      rec ? h("span", { class: f.signClass(rec.price_change_24h) }, f.percent(rec.price_change_24h)) : null);
  }

  function toolbar(ctx, slug, timeframe, horizons, horizon, onToggle) {
    const link = (tf) => h("a", { class: "tab" + (tf === timeframe ? " active" : ""), href: `#/symbol/${slug}?` +
      new URLSearchParams({ tf, horizon }).toString(), "aria-current": tf === timeframe ? "page" : null }, tf);
    const toggle = (key, text) => h("label", { class: "toggle" },
      h("input", { type: "checkbox", id: "toggle-" + key, checked: toggles[key], onchange: (event) => {
        toggles[key] = event.target.checked;
        onToggle();
      } }), " " + text);
    return h("div", { class: "toolbar" },
      h("span", { class: "tabs" }, Object.keys(TIMEFRAMES).map(link)),
      h("label", { class: "inline" }, "Horizon ", h("select", { id: "horizon", onchange: (event) =>
        ctx.navigate("symbol/" + slug, { tf: timeframe, horizon: event.target.value }) },
        horizons.map((x) => h("option", { value: x, selected: x === horizon }, x)))),
      toggle("tiers", "tier labels"), toggle("pivots", "pivots (P, R1, R2, S1, S2)"),
      toggle("profile", "volume profile (POC, VAH, VAL)"),
      toggle("all", "fit all levels"));
  }

  function levelTable(levels, supportLevels) {
    if (!levels.length) return h("p", { class: "muted" }, "No level served for this symbol.");
    return h("div", { class: "table-wrap" }, h("table", { class: "data compact", id: "levels-table" },
      h("thead", {}, h("tr", {}, ["price", "kind", "strength", "tier", "from", "touches", "distance"].map((n) =>
        h("th", { class: n === "from" || n === "touches" ? "wide-only" : null }, n)))),
      h("tbody", {}, levels.map((level) => {
        const pivots = D.priceChart.pivotsOf(level);
        const from = [...D.priceChart.profileOf(level), pivots.length ? `pivots ×${pivots.length}` : null,
          ...level.sources.filter((src) => src.startsWith("swing")).map((src) => src.replace("_", " "))].filter(Boolean);
        return h("tr", { "data-price": level.price },
          h("td", { class: "num" }, f.price(level.price)),
          h("td", {}, h("span", { class: "kind-" + level.kind }, level.kind)),
          h("td", { class: "num" }, f.number(level.strength, 2)),
          h("td", {}, D.priceChart.tiersOf(level, supportLevels).join(", ") || "–"),
          h("td", { class: "sources wide-only", title: level.sources.join(", ") }, [...new Set(from)].join(", ")),
          h("td", { class: "num wide-only" }, String(level.touches)),
          h("td", { class: "num" }, f.percent(level.distance_pct)));
      }))));
  }

  // The served pivots and volume profile with where they come from (the chart's toggles draw them).
  function referenceTable(served) {
    const card = h("section", { class: "card", id: "reference-prices" }, h("h2", {}, "Pivots and volume profile"));
    const pivots = served.pivots;
    const profile = served.volume_profile;
    const row = (group, name, price) => h("tr", { "data-reference": `${group}:${name}`, "data-price": price },
      h("td", {}, name), h("td", { class: "num" }, f.price(price)));
    const table = (rows) => h("div", { class: "table-wrap" }, h("table", { class: "data compact" }, h("tbody", {}, rows)));
    return D.dom.append(card, [
      pivots ? [
        h("p", { class: "muted" }, `Classic floor pivots of ${f.time(pivots.period_start).slice(0, 10)} UTC (H ${f.price(pivots.high)}` +
          ` · L ${f.price(pivots.low)} · C ${f.price(pivots.close)})`),
        table(D.priceChart.PIVOT_LINES.map(([key, name]) => row("pivot", name, pivots[key]))),
      ] : h("p", { class: "muted" }, "No pivots: the run stored no closed candle of the previous UTC day."),
      profile ? [
        h("p", { class: "muted" }, `Volume profile of the ${served.data_points_count} candles of ${served.calculation_method}` +
          ` (value area: ${f.number(100 * profile.value_area_share, 0)} % of the volume)`),
        table(D.priceChart.PROFILE_LINES.map(([key, name]) => row("profile", name, profile[key]))),
      ] : h("p", { class: "muted" }, "No volume profile served for this symbol."),
    ]);
  }

  // The contributions are those of the run's default horizon (analysis_details), whatever horizon is chosen.
  function contributions(rec) {
    const card = h("section", { class: "card", id: "contributions" }, h("h2", {}, "Factor contributions"));
    const values = rec && rec.analysis_details && rec.analysis_details.contributions;
    if (!values || !Object.keys(values).length) {
      return D.dom.append(card, [h("p", { class: "muted" }, rec ? "No factor contributed to this score." :
        "This symbol is not among the listed recommendations of the current run.")]);
    }
    const items = Object.entries(values).map(([name, value]) => ({ name: name.replaceAll("_", " "), value }))
      .sort((a, b) => Math.abs(b.value) - Math.abs(a.value));
    return D.dom.append(card, [D.charts.bars(items, (v) => f.number(v, 4)),
      h("p", { class: "muted" }, "each factor's pull w·(s − 0.5)/Σw on the default horizon's score; they add up to score − 0.5")]);
  }

  function pastCalls(track, horizon) {
    const card = h("section", { class: "card", id: "past-calls" }, h("h2", {}, `Past calls (${horizon})`));
    if (!track || !track.count) {
      return D.dom.append(card, [h("p", { class: "muted" },
        "No scored call yet: a run is scored once its horizon has passed in the stored candles.")]);
    }
    const rows = track.calls.slice(0, 30).map((call) => h("tr", {},
      h("td", { class: "when" }, f.time(call.as_of)), h("td", {}, D.labels.badge(call.label)),
      h("td", { class: "num" }, f.number(call.score, 3)), h("td", { class: "num wide-only" }, String(call.rank)),
      h("td", { class: "num " + f.signClass(call.forward_return) }, f.missing(call.forward_return) ? "excluded" : f.percent(100 * call.forward_return)),
      h("td", { class: "num" }, f.number(call.percentile, 0))));
    return D.dom.append(card, [
      h("p", { class: "muted" }, `${track.count} calls in the ${track.days} days to ${f.time(track.until)}; arrows on the chart mark buys and sells`),
      h("div", { class: "table-wrap" }, h("table", { class: "data compact" },
        h("thead", {}, h("tr", {}, ["entry", "label", "score", "rank", "return", "percentile"].map((n) =>
          h("th", { class: n === "rank" ? "wide-only" : null }, n)))),
        h("tbody", {}, rows)))]);
  }

  async function render(root, ctx) {
    const slug = ctx.path[1] || "BTC-USDT";
    const timeframe = TIMEFRAMES[ctx.params.get("tf")] ? ctx.params.get("tf") : "1h";
    const exchange = ctx.exchange;
    const [candles, levels, recs] = await Promise.all([
      D.api.get(`/api/v1/candles/${slug}`, { exchange, timeframe, limit: CANDLES }),
      optional(`/api/v1/support-levels/${slug}`, { exchange }),
      D.api.get("/api/v1/recommendations", { exchange, horizon: ctx.params.get("horizon"), top_n: 100 }),
    ]);
    const horizon = recs.horizon;
    const track = await optional(`/api/v1/track-record/symbols/${slug}`, { exchange, horizon });
    ctx.showRun(candles);
    const rec = recs.recommendations.find((r) => r.symbol === candles.symbol) || null;
    const served = levels ? levels.support_levels : { levels: [] };
    const chartBox = h("div", { id: "price-chart", class: "chart", "data-symbol": candles.symbol, "data-timeframe": timeframe });
    let drawn = null;
    D.dom.fill(root,
      heading(candles.symbol, rec),
      toolbar(ctx, slug, timeframe, recs.horizons, horizon, () => drawn && drawn.update(toggles)),
      chartBox,
      h("p", { class: "muted" }, `${candles.count} closed ${timeframe} candles to ${f.time(candles.as_of)} · ` +
        `${served.levels.length} levels from ${served.calculation_method || "–"}: green support, red resistance, thicker = stronger;` +
        " violet dashed: pivots; blue dotted: volume profile"),
      h("div", { class: "grid levels" },
        h("section", { class: "card" }, h("h2", {}, "Support and resistance"), levelTable(served.levels, served)),
        referenceTable(served)),
      h("div", { class: "grid two" }, contributions(rec), pastCalls(track, horizon))
    );
    ctx.after.push(() => {
      drawn = D.priceChart.draw(chartBox, {
        candles: candles.candles, levels: served.levels, supportLevels: served, toggles,
        calls: track ? track.calls : [], timeframeMs: TIMEFRAMES[timeframe],
      });
      ctx.charts.push(drawn.chart);
    });
  }

  D.views = D.views || {};
  D.views.symbol = render;
})(window.Dantaro);

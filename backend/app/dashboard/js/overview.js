// Overview: every exchange's freshness (with a banner when one is stale or not ready) and the market status of the
// chosen exchange: trend, the sentiment gauge, breadth, the volatility regime, gainers and losers.
(function (D) {
  "use strict";
  const { h } = D.dom;
  const f = D.fmt;

  function freshnessBanner(exchanges) {
    const problems = exchanges
      .filter((x) => x.status !== "ready" || x.stale)
      .map((x) => x.status !== "ready"
        ? `${x.exchange}: no analysis published yet`
        : `${x.exchange}: the newest run is ${f.age(x.age_seconds)} old (stale)`);
    if (!problems.length) return null;
    return h("div", { class: "banner stale", role: "alert", "data-testid": "stale-banner" }, problems.join(" · "));
  }

  function freshnessTable(exchanges) {
    return h("table", { class: "data compact" },
      h("thead", {}, h("tr", {}, ["exchange", "status", "run", "as of", "age"].map((name) => h("th", {}, name)))),
      h("tbody", {}, exchanges.map((x) => h("tr", { class: x.stale ? "stale" : "" },
        h("td", {}, x.exchange),
        h("td", {}, h("span", { class: "badge " + (x.status !== "ready" ? "warn" : x.stale ? "warn" : "ok") },
          x.status !== "ready" ? "not ready" : x.stale ? "stale" : "fresh")),
        h("td", { class: "mono" }, x.run_id ? x.run_id.slice(0, 12) : "–"),
        h("td", {}, f.time(x.as_of)),
        h("td", {}, f.age(x.age_seconds))))));
  }

  function movers(title, items) {
    return h("div", { class: "card" }, h("h3", {}, title),
      items.length
        ? h("ol", { class: "movers" }, items.map((m) => h("li", {},
          h("a", { href: D.symbols.href(m.symbol) }, m.symbol),
          h("span", { class: f.signClass(m.price_change_24h) }, f.percent(m.price_change_24h)))))
        : h("p", { class: "muted" }, "none"));
  }

  function stat(name, value, note) {
    return h("div", { class: "stat" }, h("span", { class: "stat-name" }, name), h("strong", {}, value),
      note ? h("span", { class: "muted" }, note) : null);
  }

  function marketCards(body) {
    const m = body.market_status;
    const d = m.details || {};
    const summary = m.analysis_summary || {};
    const sentiment = d.sentiment_index !== undefined ? d.sentiment_index : 100 * m.overall_score;
    return h("div", { class: "grid" },
      h("div", { class: "card", "data-testid": "sentiment" }, h("h3", {}, "Sentiment"),
        D.charts.gauge(sentiment, "sentiment"), h("p", { class: "center" }, m.market_sentiment)),
      h("div", { class: "card" }, h("h3", {}, "Trend"),
        stat("market", m.market_trend, `score ${f.number(m.overall_score, 2)}`),
        stat("benchmark", d.benchmark_trend || "–", d.benchmark || ""),
        stat("mean 24h change", f.percent(d.mean_change_24h_pct))),
      h("div", { class: "card" }, h("h3", {}, "Breadth"),
        D.charts.shareBar([
          { name: "advancers", value: summary.advancers || 0, cls: "share-up" },
          { name: "unchanged", value: summary.unchanged || 0, cls: "share-flat" },
          { name: "decliners", value: summary.decliners || 0, cls: "share-down" },
        ]),
        stat("advancers / decliners", `${summary.advancers} / ${summary.decliners}`),
        stat("above EMA20", f.share(d.breadth_ema20)),
        stat("above EMA50", f.share(d.breadth_ema50))),
      h("div", { class: "card" }, h("h3", {}, "Volatility"),
        stat("regime", d.volatility_regime || "–", d.volatility_percentile !== undefined ? `percentile ${f.share(d.volatility_percentile, 0)}` : ""),
        stat("median ATR", d.median_atr_pct !== undefined ? f.number(d.median_atr_pct, 2) + " %" : "–", "per candle"),
        stat("universe", String(body.total_symbols), "symbols")),
      movers("Top gainers (24h)", m.top_gainers || []),
      movers("Top losers (24h)", m.top_losers || []));
  }

  async function render(root, ctx) {
    const [catalog, market] = await Promise.all([
      D.api.get("/api/v1/exchanges"),
      D.api.get("/api/v1/market-status", { exchange: ctx.exchange }),
    ]);
    ctx.showRun(market);
    D.dom.fill(root,
      h("h1", {}, "Overview"),
      freshnessBanner(catalog.exchanges),
      h("section", { class: "card" }, h("h2", {}, "Exchanges"), freshnessTable(catalog.exchanges)),
      h("h2", {}, `Market status: ${market.exchange}`),
      h("p", { class: "muted" }, `run ${market.run_id} · as of ${f.time(market.as_of)} · served from ${market.data_source}`),
      marketCards(market)
    );
  }

  D.views = D.views || {};
  D.views.overview = render;
})(window.Dantaro);

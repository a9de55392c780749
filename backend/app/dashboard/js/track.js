// Track record: the realised IC of every scored run over time with its running mean (and the random baseline's IC on
// the same runs), and per label what the calls returned against the random baseline's permuted labels.
(function (D) {
  "use strict";
  const { h } = D.dom;
  const f = D.fmt;
  const PAGE = 200; // the API's page maximum
  const MAX_RUNS = 1000;
  const WINDOWS = [7, 30, 90, 365];

  async function scoredRuns(exchange, horizon) {
    const runs = [];
    let before = null;
    do {
      const page = await D.api.get("/api/v1/track-record/runs", { exchange, horizon, limit: PAGE, before });
      runs.push(...page.runs);
      before = page.next_before;
    } while (before && runs.length < MAX_RUNS);
    return runs.reverse(); // oldest first
  }

  // [{time, value}] ascending with unique times (the chart needs both), skipping runs without a value.
  function points(runs, value) {
    const byTime = new Map();
    for (const run of runs) {
      const v = value(run);
      if (!f.missing(v)) byTime.set(Date.parse(run.as_of) / 1000, v);
    }
    return [...byTime.entries()].sort((a, b) => a[0] - b[0]).map(([time, v]) => ({ time, value: v }));
  }

  function runningMean(series) {
    let sum = 0;
    return series.map((point, i) => {
      sum += point.value;
      return { time: point.time, value: sum / (i + 1) };
    });
  }

  function figure(name, model, random, format) {
    return h("div", { class: "stat" }, h("span", { class: "stat-name" }, name), h("strong", {}, format(model)),
      random === undefined ? null : h("span", { class: "muted" }, "random " + format(random)));
  }

  function figures(body) {
    const m = body.model;
    const r = body.random_baseline;
    const num = (digits) => (v) => f.number(v, digits);
    const pct = (v) => (f.missing(v) ? "–" : f.percent(100 * v));
    return h("div", { class: "grid stats", "data-testid": "track-figures" },
      figure("runs scored", body.runs_scored, undefined, String),
      figure("mean IC", m.mean_ic, r.mean_ic, num(3)),
      figure("IC t (Newey-West)", m.ic_t, r.ic_t, num(2)),
      figure("runs with IC > 0", m.positive_ic_share, r.positive_ic_share, f.share),
      figure("top-5 excess", m.top5_excess, r.top5_excess, pct),
      figure("top-10 excess", m.top10_excess, r.top10_excess, pct),
      figure("levels touched", m.levels.touch_rate, r.levels.touch_rate, f.share),
      figure("touched levels bounced", m.levels.bounce_rate, r.levels.bounce_rate, f.share));
  }

  function labelBars(body) {
    const random = Object.fromEntries(body.random_baseline.labels.map((x) => [x.label, x]));
    const groups = body.model.labels.map((x) => ({
      name: x.label.replace("_", " "),
      values: [
        { name: "served", value: f.missing(x.mean_excess_log_return) ? null : 100 * x.mean_excess_log_return, cls: "bar-model" },
        { name: "random", value: f.missing(random[x.label].mean_excess_log_return) ? null : 100 * random[x.label].mean_excess_log_return, cls: "bar-random" },
      ],
    }));
    const counts = body.model.labels.map((x) => `${x.label.replace("_", " ")} ${x.count}`).join(" · ");
    return h("section", { class: "card", id: "label-outcomes" },
      h("h2", {}, "Per label: mean excess return over the horizon"),
      D.charts.legend([["bar-model", "served labels"], ["bar-random", "random baseline (labels permuted)"]]),
      D.charts.groupedBars(groups, (v) => f.percent(v, 3)),
      h("p", { class: "muted" }, "log return minus the run's universe mean, in %; calls: " + counts));
  }

  function toolbar(ctx, body, days) {
    const go = (name) => (event) => ctx.navigate("track-record", { horizon: body.horizon, days, [name]: event.target.value });
    return h("div", { class: "toolbar" },
      h("label", { class: "inline" }, "Horizon ", h("select", { id: "horizon", onchange: go("horizon") },
        body.horizons.map((x) => h("option", { value: x, selected: x === body.horizon }, x)))),
      h("label", { class: "inline" }, "Window ", h("select", { id: "days", onchange: go("days") },
        WINDOWS.map((x) => h("option", { value: x, selected: x === days }, `${x} days`)))));
  }

  async function render(root, ctx) {
    const days = WINDOWS.includes(Number(ctx.params.get("days"))) ? Number(ctx.params.get("days")) : 30;
    const body = await D.api.get("/api/v1/track-record", { exchange: ctx.exchange, horizon: ctx.params.get("horizon"), days });
    ctx.showRun(null);
    const head = [h("h1", {}, `Track record: ${body.exchange}, ${body.horizon}`), toolbar(ctx, body, days)];
    if (!body.runs_scored) {
      D.dom.fill(root, ...head, h("p", { class: "message", "data-testid": "nothing-scored" },
        `No run has been scored at ${body.horizon} in the last ${days} days yet: a run is scored once its horizon has ` +
        "passed in the stored candles."));
      return;
    }
    const runs = await scoredRuns(ctx.exchange, body.horizon);
    const ic = points(runs, (run) => run.ic);
    const chartBox = h("div", { id: "ic-chart", class: "chart short", "data-runs": ic.length });
    D.dom.fill(root, ...head,
      h("p", { class: "muted" }, `${body.runs_scored} runs scored from ${f.time(body.first_run.as_of)} to ` +
        `${f.time(body.last_run.as_of)} · ${body.symbols_scored} symbol calls, ${body.symbols_excluded} excluded`),
      figures(body),
      h("section", { class: "card" }, h("h2", {}, "Realised IC per run"),
        D.charts.legend([["line-ic", "IC of the run"], ["line-mean", "running mean"], ["line-random", "random baseline IC"]]),
        chartBox,
        h("p", { class: "muted" }, `Spearman correlation of each run's scores with the returns that followed (${runs.length} newest runs)`)),
      labelBars(body));
    ctx.after.push(() => ctx.charts.push(D.charts.lines(chartBox, [
      { points: points(runs, (run) => run.random_ic), color: "#94a3b8", width: 1 },
      { points: ic, color: "#2563eb", width: 1, markers: true },
      { points: runningMean(ic), color: "#f59e0b", width: 3 },
    ])));
  }

  D.views = D.views || {};
  D.views["track-record"] = render;
})(window.Dantaro);

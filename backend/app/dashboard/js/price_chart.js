// The symbol page's chart: closed candles with volume, one price line per served support/resistance level, and the
// served reference prices as lines of their own that the toggles add and remove.
//
// A level line's width grows with the level's strength (1 px below 0.125 ... 4 px from 0.875); it is green (support)
// or red (resistance) and names its tier with "tier labels". "pivots" adds the previous UTC day's classic floor pivots
// (support_levels.pivots: P, R1, R2, S1, S2; violet, dashed) and "volume profile" the profile's POC, VAH and VAL
// (support_levels.volume_profile; blue, dotted): the prices the API serves, never computed here. Each line carries an
// id ("level:3", "pivot:R1", "profile:POC"); after every change the chart element's data-levels and data-references
// attributes hold what the library reports it draws (series.priceLines()), which the browser tests read back.
(function (D) {
  "use strict";
  const LWC = D.charts.LWC;
  const COLORS = {
    support: "#15803d", resistance: "#b91c1c", up: "#16a34a", down: "#dc2626", pivot: "#7c3aed", profile: "#0369a1",
  };
  const PIVOT_LINES = [["r2", "R2"], ["r1", "R1"], ["pivot", "P"], ["s1", "S1"], ["s2", "S2"]]; // highest first
  const PROFILE_LINES = [["value_area_high", "VAH"], ["poc", "POC"], ["value_area_low", "VAL"]]; // highest first
  const PROFILE = { volume_poc: "POC", value_area_high: "VAH", value_area_low: "VAL" };
  const TIERS = ["aggressive", "moderate", "conservative"];
  const VISIBLE_BARS = 180;

  // The tier names ("moderate support") whose price is this level's.
  function tiersOf(level, supportLevels) {
    return TIERS.map((tier) => `${tier} ${level.kind}`).filter((name) => {
      const price = supportLevels[name.replace(" ", "_")];
      return price !== null && price !== undefined && Math.abs(price - level.price) <= 1e-9 * Math.abs(level.price);
    });
  }

  // pivot_week_classic_R2 -> "W R2".
  function pivotsOf(level) {
    const names = level.sources.filter((src) => src.startsWith("pivot_")).map((src) => {
      const [, period, , name] = src.split("_");
      return `${period[0].toUpperCase()} ${name}`;
    });
    return [...new Set(names)];
  }

  function profileOf(level) {
    return level.sources.filter((src) => src in PROFILE).map((src) => PROFILE[src]);
  }

  function lineOptions(level, index, supportLevels, toggles) {
    return {
      id: `level:${index}`,
      price: level.price,
      color: COLORS[level.kind] || "#475569",
      lineWidth: Math.min(4, 1 + Math.floor(level.strength * 4)),
      lineStyle: LWC.LineStyle.Solid,
      axisLabelVisible: true,
      title: toggles.tiers ? tiersOf(level, supportLevels).join(" · ") : "",
    };
  }

  // The served reference prices the toggles show: [{group, name, price}] (a non-positive price has no line).
  function referencePrices(supportLevels, toggles) {
    const groups = [
      ["pivot", toggles.pivots && supportLevels.pivots, PIVOT_LINES],
      ["profile", toggles.profile && supportLevels.volume_profile, PROFILE_LINES],
    ];
    return groups.flatMap(([group, served, lines]) => (served ? lines : [])
      .map(([key, name]) => ({ group, name, price: served[key] }))
      .filter((line) => Number.isFinite(line.price) && line.price > 0));
  }

  function referenceOptions(line) {
    return {
      id: `${line.group}:${line.name}`,
      price: line.price,
      color: COLORS[line.group],
      lineWidth: line.name === "P" || line.name === "POC" ? 2 : 1,
      lineStyle: line.group === "pivot" ? LWC.LineStyle.Dashed : LWC.LineStyle.Dotted,
      axisLabelVisible: true,
      title: line.name,
    };
  }

  function precisionOf(candles) {
    const last = candles.length ? Math.abs(candles[candles.length - 1].close) : 1;
    return last >= 1000 ? 2 : last >= 1 ? 4 : Math.min(8, 2 + Math.ceil(-Math.log10(last || 1)) + 2);
  }

  // The prices the price scale must include besides the candles: every level with "fit all levels", else the
  // aggressive (nearest) support and resistance. Levels outside the scale are still drawn: drag the scale to see them.
  // Shown pivots are always framed (they lie around the last day's range); the profile's prices span the whole
  // levels series and are framed with "fit all levels" only.
  function framedPrices(data, toggles) {
    const references = referencePrices(data.supportLevels, toggles);
    if (toggles.all) return [...data.levels.map((level) => level.price), ...references.map((line) => line.price)];
    const s = data.supportLevels;
    const pivots = references.filter((line) => line.group === "pivot").map((line) => line.price);
    return [s.aggressive_support, s.aggressive_resistance, ...pivots].filter((price) => !D.fmt.missing(price));
  }

  function autoscaleWith(prices) {
    return (original) => {
      const found = original();
      if (!found || !prices.length) return found;
      const range = found.priceRange;
      return { ...found, priceRange: { minValue: Math.min(range.minValue, ...prices), maxValue: Math.max(range.maxValue, ...prices) } };
    };
  }

  function addCandles(chart, candles, framed) {
    const precision = precisionOf(candles);
    const series = chart.addSeries(LWC.CandlestickSeries, {
      upColor: COLORS.up, downColor: COLORS.down, wickUpColor: COLORS.up, wickDownColor: COLORS.down,
      borderVisible: false,
      priceFormat: { type: "price", precision, minMove: Math.pow(10, -precision) },
      autoscaleInfoProvider: autoscaleWith(framed),
    });
    series.setData(candles.map((c) => ({ time: c.open_time_ms / 1000, open: c.open, high: c.high, low: c.low, close: c.close })));
    const volume = chart.addSeries(LWC.HistogramSeries, {
      priceScaleId: "volume", priceFormat: { type: "volume" }, lastValueVisible: false, priceLineVisible: false,
    });
    volume.priceScale().applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
    volume.setData(candles.map((c) => ({
      time: c.open_time_ms / 1000, value: c.volume, color: c.close >= c.open ? "rgba(22,163,74,0.35)" : "rgba(220,38,38,0.35)",
    })));
    return series;
  }

  // Arrows on the candles the symbol's past calls were made after (buys below, sells above; HOLD is not marked).
  function callMarkers(series, candles, calls, timeframeMs) {
    const opens = new Set(candles.map((c) => c.open_time_ms));
    const markers = [];
    for (const call of calls) {
      const open = Date.parse(call.as_of) - timeframeMs;
      if (!opens.has(open) || call.label === "HOLD") continue;
      const buy = call.label.endsWith("BUY");
      markers.push({
        time: open / 1000, position: buy ? "belowBar" : "aboveBar", shape: buy ? "arrowUp" : "arrowDown",
        color: buy ? COLORS.up : COLORS.down, text: (call.label.startsWith("STRONG") ? "S" : "") + (buy ? "B" : "S"),
      });
    }
    markers.sort((a, b) => a.time - b.time);
    if (markers.length) LWC.createSeriesMarkers(series, markers);
    return markers.length;
  }

  // What the library reports it draws, split into the level lines and the reference lines by their ids.
  function publish(container, series, marked) {
    const drawn = series.priceLines().map((line) => {
      const o = line.options();
      return { id: o.id, price: o.price, title: o.title, lineWidth: o.lineWidth, lineStyle: o.lineStyle, color: o.color };
    });
    container.dataset.levels = JSON.stringify(drawn.filter((line) => line.id.startsWith("level:")));
    container.dataset.references = JSON.stringify(drawn.filter((line) => !line.id.startsWith("level:")));
    container.dataset.candles = String(series.data().length);
    container.dataset.markers = String(marked);
  }

  // Draws the chart in container; returns {chart, update(toggles)}.
  function priceChart(container, data) {
    const chart = D.charts.createChart(container, { rightPriceScale: { scaleMargins: { top: 0.06, bottom: 0.22 } } });
    const series = addCandles(chart, data.candles, framedPrices(data, data.toggles));
    const lines = data.levels.map((level, i) => series.createPriceLine(lineOptions(level, i, data.supportLevels, data.toggles)));
    let references = [];
    function drawReferences(toggles) {
      references.forEach((line) => series.removePriceLine(line));
      references = referencePrices(data.supportLevels, toggles).map((line) => series.createPriceLine(referenceOptions(line)));
    }
    drawReferences(data.toggles);
    const marked = callMarkers(series, data.candles, data.calls || [], data.timeframeMs);
    const bars = data.candles.length;
    chart.timeScale().setVisibleLogicalRange({ from: Math.max(0, bars - VISIBLE_BARS), to: bars + 2 });
    publish(container, series, marked);
    return {
      chart,
      update(toggles) {
        series.applyOptions({ autoscaleInfoProvider: autoscaleWith(framedPrices(data, toggles)) });
        data.levels.forEach((level, i) => lines[i].applyOptions(lineOptions(level, i, data.supportLevels, toggles)));
        drawReferences(toggles);
        publish(container, series, marked);
      },
    };
  }

  D.priceChart = { draw: priceChart, tiersOf, pivotsOf, profileOf, PIVOT_LINES, PROFILE_LINES };
})(window.Dantaro);

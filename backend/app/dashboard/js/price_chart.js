// The symbol page's chart: closed candles with volume, and one price line per served support/resistance level.
//
// A line's width grows with the level's strength (1 px below 0.125 ... 4 px from 0.875). The served levels are merged
// clusters; pivots and the volume profile (POC, VAH, VAL) are among their sources, so those toggles mark the levels
// that carry them (dashed: pivots, dotted: volume profile, with their names) and never add a price the API did not
// serve. After every change the chart element's data-levels attribute holds what the library reports it draws
// (series.priceLines()), which the browser tests read back.
(function (D) {
  "use strict";
  const LWC = D.charts.LWC;
  const COLORS = { support: "#15803d", resistance: "#b91c1c", up: "#16a34a", down: "#dc2626" };
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

  function lineOptions(level, supportLevels, toggles) {
    const pivots = pivotsOf(level);
    const profile = profileOf(level);
    const title = [
      ...(toggles.tiers ? tiersOf(level, supportLevels) : []),
      ...(toggles.profile ? profile : []),
      ...(toggles.pivots && pivots.length ? ["pivot " + pivots.join(" ")] : []),
    ].join(" · ");
    let lineStyle = LWC.LineStyle.Solid;
    if (toggles.pivots && pivots.length) lineStyle = LWC.LineStyle.Dashed;
    if (toggles.profile && profile.length) lineStyle = LWC.LineStyle.Dotted;
    return {
      price: level.price,
      color: COLORS[level.kind] || "#475569",
      lineWidth: Math.min(4, 1 + Math.floor(level.strength * 4)),
      lineStyle,
      axisLabelVisible: true,
      title,
    };
  }

  function precisionOf(candles) {
    const last = candles.length ? Math.abs(candles[candles.length - 1].close) : 1;
    return last >= 1000 ? 2 : last >= 1 ? 4 : Math.min(8, 2 + Math.ceil(-Math.log10(last || 1)) + 2);
  }

  // The prices the price scale must include besides the candles: every level with "fit all levels", else the
  // aggressive (nearest) support and resistance. Levels outside the scale are still drawn: drag the scale to see them.
  function framedPrices(data, toggles) {
    if (toggles.all) return data.levels.map((level) => level.price);
    const s = data.supportLevels;
    return [s.aggressive_support, s.aggressive_resistance].filter((price) => !D.fmt.missing(price));
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

  // Draws the chart in container; returns {chart, update(toggles)}.
  function priceChart(container, data) {
    const chart = D.charts.createChart(container, { rightPriceScale: { scaleMargins: { top: 0.06, bottom: 0.22 } } });
    const series = addCandles(chart, data.candles, framedPrices(data, data.toggles));
    const lines = data.levels.map((level) => series.createPriceLine(lineOptions(level, data.supportLevels, data.toggles)));
    const marked = callMarkers(series, data.candles, data.calls || [], data.timeframeMs);
    const bars = data.candles.length;
    chart.timeScale().setVisibleLogicalRange({ from: Math.max(0, bars - VISIBLE_BARS), to: bars + 2 });
    function publish() {
      const drawn = series.priceLines().map((line) => {
        const o = line.options();
        return { price: o.price, title: o.title, lineWidth: o.lineWidth, lineStyle: o.lineStyle, color: o.color };
      });
      container.dataset.levels = JSON.stringify(drawn);
      container.dataset.candles = String(series.data().length);
      container.dataset.markers = String(marked);
    }
    publish();
    return {
      chart,
      update(toggles) {
        series.applyOptions({ autoscaleInfoProvider: autoscaleWith(framedPrices(data, toggles)) });
        data.levels.forEach((level, i) => lines[i].applyOptions(lineOptions(level, data.supportLevels, toggles)));
        publish();
      },
    };
  }

  D.priceChart = { draw: priceChart, tiersOf, pivotsOf, profileOf };
})(window.Dantaro);

// Small SVG charts drawn from API numbers (gauge, horizontal bars, grouped bars, stacked share bar) and the time-series
// line chart of the track record (lightweight-charts). Colours of SVG parts come from CSS classes.
(function (D) {
  "use strict";
  const { s, h } = D.dom;
  const LWC = window.LightweightCharts;

  // A half-circle gauge of value in [0, 100] with its label underneath.
  function gauge(value, caption) {
    const radius = 80;
    const angle = Math.PI * (1 - Math.max(0, Math.min(100, value)) / 100);
    const point = (a) => [100 + radius * Math.cos(a), 100 - radius * Math.sin(a)];
    const arc = (from, to, cls) => {
      const [x1, y1] = point(from);
      const [x2, y2] = point(to);
      return s("path", { d: `M ${x1} ${y1} A ${radius} ${radius} 0 0 1 ${x2} ${y2}`, class: cls });
    };
    const [nx, ny] = point(angle);
    return s(
      "svg",
      { viewBox: "0 0 200 130", class: "gauge", role: "img", "aria-label": `${caption}: ${Math.round(value)} of 100` },
      arc(Math.PI, Math.PI * 0.6, "gauge-fear"),
      arc(Math.PI * 0.6, Math.PI * 0.4, "gauge-neutral"),
      arc(Math.PI * 0.4, 0, "gauge-greed"),
      s("line", { x1: 100, y1: 100, x2: nx, y2: ny, class: "gauge-needle" }),
      s("circle", { cx: 100, cy: 100, r: 5, class: "gauge-hub" }),
      s("text", { x: 100, y: 125, class: "gauge-value", "text-anchor": "middle" }, String(Math.round(value)))
    );
  }

  // Horizontal bars around a zero axis: items [{name, value}] in the order given, each with its name and
  // format(value) on a line above its bar (readable from phone to desktop width).
  function bars(items, format) {
    const rowH = 34;
    const width = 400;
    const extent = Math.max(1e-12, ...items.map((item) => Math.abs(item.value)));
    const hasNegative = items.some((item) => item.value < 0);
    const zero = hasNegative ? width / 2 : 0;
    const scale = (hasNegative ? width / 2 : width) / extent;
    const height = items.length * rowH + 4;
    const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "bars", role: "img" });
    items.forEach((item, i) => {
      const y = i * rowH;
      const length = Math.abs(item.value) * scale;
      svg.append(
        s("text", { x: 0, y: y + 13, class: "bar-name" }, item.name),
        s("text", { x: width, y: y + 13, "text-anchor": "end", class: "bar-value" }, format(item.value)),
        s("rect", { x: item.value >= 0 ? zero : zero - length, y: y + 17, width: Math.max(1, length), height: 12,
          class: item.value >= 0 ? "bar-up" : "bar-down" })
      );
    });
    svg.append(s("line", { x1: zero, x2: zero, y1: 16, y2: height, class: "bar-axis" }));
    return svg;
  }

  // Grouped vertical bars: groups [{name, values: [{name, value, cls}]}] around zero, with a legend.
  function groupedBars(groups, format) {
    const width = 560;
    const height = 220;
    const top = 16;
    const bottom = 40;
    const plotH = height - top - bottom;
    const values = groups.flatMap((g) => g.values.map((v) => v.value)).filter((v) => !D.fmt.missing(v));
    const extent = Math.max(1e-12, ...values.map(Math.abs));
    const hasNegative = values.some((v) => v < 0);
    const zeroY = top + (hasNegative ? plotH / 2 : plotH);
    const scale = (hasNegative ? plotH / 2 : plotH) / extent;
    const groupW = width / groups.length;
    const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "bars grouped", role: "img" });
    groups.forEach((group, gi) => {
      const barW = (groupW * 0.7) / group.values.length;
      group.values.forEach((v, vi) => {
        const x = gi * groupW + groupW * 0.15 + vi * barW;
        if (D.fmt.missing(v.value)) return;
        const length = Math.abs(v.value) * scale;
        const y = v.value >= 0 ? zeroY - length : zeroY;
        const rect = s("rect", { x, y, width: barW - 2, height: Math.max(1, length), class: v.cls });
        rect.append(s("title", {}, `${group.name} ${v.name}: ${format(v.value)}`));
        const labelY = v.value >= 0 ? y - 3 : y + length + 11;
        svg.append(rect, s("text", { x: x + barW / 2 - 1, y: labelY, "text-anchor": "middle", class: "bar-value" }, format(v.value)));
      });
      svg.append(s("text", { x: gi * groupW + groupW / 2, y: height - 22, "text-anchor": "middle", class: "bar-name" }, group.name));
    });
    svg.append(s("line", { x1: 0, x2: width, y1: zeroY, y2: zeroY, class: "bar-axis" }));
    return svg;
  }

  // One bar split into shares: parts [{name, value, cls}] (values are counts).
  function shareBar(parts) {
    const total = parts.reduce((sum, part) => sum + part.value, 0) || 1;
    const svg = s("svg", { viewBox: "0 0 300 18", class: "share-bar", role: "img", preserveAspectRatio: "none" });
    let x = 0;
    for (const part of parts) {
      const width = (300 * part.value) / total;
      const rect = s("rect", { x, y: 0, width, height: 18, class: part.cls });
      rect.append(s("title", {}, `${part.name}: ${part.value}`));
      svg.append(rect);
      x += width;
    }
    return svg;
  }

  function legend(entries) {
    return h("p", { class: "legend" }, entries.map(([cls, text]) => h("span", { class: "key " + cls }, text)));
  }

  const THEME = {
    layout: { background: { color: "#ffffff" }, textColor: "#1f2937", attributionLogo: false },
    grid: { vertLines: { color: "#f1f5f9" }, horzLines: { color: "#f1f5f9" } },
    rightPriceScale: { borderColor: "#cbd5e1" },
    timeScale: { borderColor: "#cbd5e1", timeVisible: true },
    autoSize: true,
  };

  // A lightweight-charts chart in container with the dashboard's theme (the attribution is in the page footer).
  function createChart(container, options) {
    return LWC.createChart(container, { ...THEME, ...(options || {}) });
  }

  // Time-series lines: specs [{points: [{time, value}], color, width, title}]; returns the chart.
  function lines(container, specs) {
    const chart = createChart(container);
    for (const spec of specs) {
      const series = chart.addSeries(LWC.LineSeries, {
        color: spec.color,
        lineWidth: spec.width || 2,
        title: spec.title,
        pointMarkersVisible: Boolean(spec.points && spec.points.length < 60 && spec.markers),
        priceFormat: { type: "price", precision: 3, minMove: 0.001 },
        lastValueVisible: false,
        priceLineVisible: false,
      });
      series.setData(spec.points);
    }
    chart.timeScale().fitContent();
    return chart;
  }

  D.charts = { gauge, bars, groupedBars, shareBar, legend, createChart, lines, LWC };
})(window.Dantaro);

// Shared helpers of the dashboard: building DOM nodes (never from HTML strings) and formatting numbers and times.
// Every dashboard script adds itself to the one global, window.Dantaro.
(function () {
  "use strict";
  const D = (window.Dantaro = window.Dantaro || {});

  // h("a", {href: "#/"}, "text", child): an element with attributes (class via "class", data-* as written) and
  // children (strings become text nodes; null and false are skipped).
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";

  // s("rect", {x: 1}): an SVG element (presentation attributes only: no style attribute, the CSP forbids it).
  function s(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, String(value));
    }
    return append(node, children);
  }

  function missing(value) {
    return value === null || value === undefined || Number.isNaN(value);
  }

  function number(value, digits = 2) {
    if (missing(value)) return "–";
    return Number(value).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  // Prices keep about five significant digits whatever their size (0.06365, 54.92, 20699.54).
  function price(value) {
    if (missing(value)) return "–";
    const size = Math.abs(value);
    const digits = size >= 1000 ? 2 : size >= 1 ? 4 : Math.min(8, 2 + Math.ceil(-Math.log10(size || 1)) + 2);
    return Number(value).toLocaleString("en-US", { maximumFractionDigits: digits });
  }

  function percent(value, digits = 2) {
    if (missing(value)) return "–";
    return (value > 0 ? "+" : "") + number(value, digits) + " %";
  }

  // A [0, 1] share as a percentage.
  function share(value, digits = 1) {
    return missing(value) ? "–" : number(100 * value, digits) + " %";
  }

  function compact(value) {
    if (missing(value)) return "–";
    return Number(value).toLocaleString("en-US", { notation: "compact", maximumFractionDigits: 2 });
  }

  function time(iso) {
    if (!iso) return "–";
    return new Date(iso).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function age(seconds) {
    if (missing(seconds)) return "–";
    if (seconds < 90) return Math.round(seconds) + " s";
    if (seconds < 5400) return Math.round(seconds / 60) + " min";
    if (seconds < 172800) return number(seconds / 3600, 1) + " h";
    return number(seconds / 86400, 1) + " d";
  }

  // "BTC/USDT" <-> "BTC-USDT": the form used in the dashboard's own URLs (the API reads both).
  function symbolSlug(symbol) {
    return symbol.replace("/", "-");
  }

  function symbolHref(symbol, params) {
    const query = new URLSearchParams(params || {}).toString();
    return "#/symbol/" + encodeURIComponent(symbolSlug(symbol)) + (query ? "?" + query : "");
  }

  const LABELS = ["STRONG_BUY", "BUY", "HOLD", "SELL", "STRONG_SELL"];

  function labelBadge(label) {
    return h("span", { class: "badge label-" + String(label).toLowerCase().replace("_", "-") }, String(label).replace("_", " "));
  }

  function signClass(value) {
    return missing(value) || value === 0 ? "" : value > 0 ? "up" : "down";
  }

  // Replaces node's children with children (null and false skipped, as in h).
  function fill(node, ...children) {
    node.replaceChildren();
    return append(node, children);
  }

  D.dom = { h, s, append, fill };
  D.fmt = { number, price, percent, share, compact, time, age, missing, signClass };
  D.symbols = { slug: symbolSlug, href: symbolHref };
  D.labels = { all: LABELS, badge: labelBadge };
})();

// The dashboard shell: the key form, the exchange choice, routing between the views (#/, #/recommendations,
// #/symbol/BTC-USDT, #/track-record) and re-rendering the current view when a new run is published.
//
// A view renders into a detached element that replaces the shown one only when it is complete and still wanted, so
// a refresh never flashes an empty page and a slow answer never overwrites a newer view; charts are drawn by
// ctx.after callbacks once their element is in the page (they size themselves from it).
// The body's data-state (login, loading, ready, error), data-view and data-renders say where the page is.
(function (D) {
  "use strict";
  const { h } = D.dom;
  const $ = (id) => document.getElementById(id);
  const EXCHANGE_KEY = "dantaro.exchange"; // the last exchange chosen in this tab (not a secret)
  const state = { exchange: null, stopWatching: null, charts: [], token: 0, renders: 0, retry: null };

  function setState(name) {
    document.body.dataset.state = name;
  }

  function parseHash() {
    const [pathText, query] = window.location.hash.replace(/^#\/?/, "").split("?");
    const path = pathText ? pathText.split("/").map(decodeURIComponent) : [];
    return { name: D.views[path[0]] ? path[0] : "overview", path, params: new URLSearchParams(query || "") };
  }

  function navigate(route, params) {
    const kept = Object.entries(params || {}).filter(([, value]) => value !== null && value !== undefined && value !== "");
    const query = new URLSearchParams(kept).toString();
    window.location.hash = "#/" + route + (query ? "?" + query : "");
  }

  function showRun(body) {
    const info = $("run-info");
    info.hidden = !body || !body.run_id;
    if (info.hidden) return;
    info.replaceChildren(`${body.exchange} · run ${body.run_id} · as of ${D.fmt.time(body.as_of)} · computed ` +
      `${D.fmt.age(body.age_seconds)} ago · ${body.data_source}`, body.stale ? h("span", { class: "badge warn" }, "stale") : "");
  }

  function stopWatching() {
    if (state.stopWatching) state.stopWatching();
    state.stopWatching = null;
    window.clearTimeout(state.retry);
  }

  function showLogin(message, isError = true) {
    stopWatching();
    state.token += 1;
    for (const id of ["view", "nav", "controls", "run-info"]) $(id).hidden = true;
    $("view").replaceChildren();
    const box = $("login-message");
    box.hidden = !message;
    box.className = "message" + (isError ? " error" : "");
    box.textContent = message || "";
    $("login").hidden = false;
    setState("login");
    $("api-key").focus();
  }

  function showError(error) {
    if (error.status === 401) {
      D.api.key.forget();
      showLogin(`The API refused this key (${error.message}). Enter a valid API key.`);
      return;
    }
    const retryS = error.retryAfterS;
    const note = retryS ? ` Retrying in ${retryS} s.` : "";
    $("view").replaceChildren(h("div", { class: "message error", role: "alert", "data-testid": "error" }, error.message + note));
    setState("error");
    if (retryS) state.retry = window.setTimeout(render, retryS * 1000);
  }

  function highlight(name) {
    for (const link of document.querySelectorAll("#nav a")) {
      const active = link.dataset.route === name || (name === "symbol" && link.dataset.route === "recommendations");
      link.classList.toggle("active", active);
      if (active) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  async function render() {
    if (!D.api.key.get()) return showLogin("");
    window.clearTimeout(state.retry);
    const token = (state.token += 1);
    const current = parseHash();
    highlight(current.name);
    if (!$("view").childElementCount) setState("loading");
    const target = h("div", { class: "view-body" });
    const ctx = { exchange: state.exchange, path: current.path, params: current.params, navigate, showRun, charts: [], after: [] };
    try {
      await D.views[current.name](target, ctx);
    } catch (error) {
      if (token === state.token) showError(error);
      return;
    }
    if (token !== state.token) return; // a newer render is under way
    const previous = state.charts;
    $("view").replaceChildren(target);
    ctx.after.forEach((draw) => draw());
    state.charts = ctx.charts;
    previous.forEach((chart) => chart.remove());
    state.renders += 1;
    Object.assign(document.body.dataset, { view: current.name, renders: String(state.renders) });
    setState("ready");
  }

  function watch() {
    stopWatching();
    state.stopWatching = D.api.watchRuns(state.exchange, render, (error) => {
      if (error.status === 401) showError(error);
    });
  }

  function chooseExchange(catalog) {
    const names = catalog.exchanges.map((x) => x.exchange);
    const saved = window.sessionStorage.getItem(EXCHANGE_KEY);
    state.exchange = names.includes(saved) ? saved : catalog.default_exchange;
    $("exchange").replaceChildren(...names.map((name) => h("option", { value: name, selected: name === state.exchange }, name)));
  }

  async function start() {
    setState("loading");
    let catalog;
    try {
      catalog = await D.api.get("/api/v1/exchanges");
    } catch (error) {
      showError(error);
      return;
    }
    chooseExchange(catalog);
    $("login").hidden = true;
    for (const id of ["view", "nav", "controls"]) $(id).hidden = false;
    watch();
    await render();
  }

  function signIn(event) {
    event.preventDefault();
    const input = $("api-key");
    const value = input.value.trim();
    input.value = "";
    if (!value) return showLogin("Enter an API key.");
    D.api.key.set(value);
    $("login-message").hidden = true;
    start();
  }

  function boot() {
    $("login-form").addEventListener("submit", signIn);
    $("forget-key").addEventListener("click", () => {
      D.api.key.forget();
      showLogin("The key was removed from this tab.", false);
    });
    $("exchange").addEventListener("change", (event) => {
      state.exchange = event.target.value;
      window.sessionStorage.setItem(EXCHANGE_KEY, state.exchange);
      watch();
      render();
    });
    window.addEventListener("hashchange", render);
    if (D.api.key.get()) start();
    else showLogin("");
  }

  boot();
})(window.Dantaro);

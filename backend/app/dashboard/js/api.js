// The API client of the dashboard: the key, requests with ETag revalidation, errors, and learning about new runs.
//
// The key lives only in this tab's sessionStorage and travels only as the Authorization header of same-origin
// requests: never in a URL, a cookie or a file. Every GET is revalidated with If-None-Match against the last body
// seen for the same URL (a 304 re-uses it), so refreshing a view that has not changed costs no body.
(function (D) {
  "use strict";

  const STORAGE_KEY = "dantaro.apiKey";
  const MAX_REMEMBERED = 64;
  const POLL_MIN_S = 5;
  const POLL_MAX_S = 15;

  class ApiError extends Error {
    constructor(status, code, message, retryAfterS) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfterS = retryAfterS;
    }
  }

  const key = {
    get: () => window.sessionStorage.getItem(STORAGE_KEY),
    set: (value) => window.sessionStorage.setItem(STORAGE_KEY, value),
    forget: () => window.sessionStorage.removeItem(STORAGE_KEY),
  };

  const remembered = new Map(); // path + query -> {etag, body}

  function remember(url, etag, body) {
    remembered.delete(url);
    remembered.set(url, { etag, body });
    if (remembered.size > MAX_REMEMBERED) remembered.delete(remembered.keys().next().value);
  }

  function urlOf(path, params) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== null && value !== undefined && value !== "") query.set(name, value);
    }
    const text = query.toString();
    return path + (text ? "?" + text : "");
  }

  function maxAgeS(response) {
    const match = /max-age=(\d+)/.exec(response.headers.get("cache-control") || "");
    return match ? Number(match[1]) : null;
  }

  async function errorOf(response) {
    let code = "http_" + response.status;
    let message = "The API answered " + response.status + ".";
    try {
      const body = await response.json();
      if (body && body.error) ({ code, message } = body.error);
    } catch (ignored) {
      // not our JSON error shape: keep the status line
    }
    const retry = Number(response.headers.get("retry-after"));
    return new ApiError(response.status, code, message, Number.isFinite(retry) && retry > 0 ? retry : null);
  }

  // GET path?params -> {body, status, maxAgeS, changed}; throws ApiError (status 0: the API cannot be reached).
  async function request(path, params) {
    const secret = key.get();
    if (!secret) throw new ApiError(401, "unauthorized", "Enter an API key.", null);
    const url = urlOf(path, params);
    const known = remembered.get(url);
    const headers = { Authorization: "Bearer " + secret, Accept: "application/json" };
    if (known) headers["If-None-Match"] = known.etag;
    let response;
    try {
      response = await fetch(url, { headers, cache: "no-store", credentials: "omit", redirect: "error" });
    } catch (error) {
      throw new ApiError(0, "unreachable", "The API cannot be reached (" + error.message + ").", 5);
    }
    if (response.status === 304 && known) {
      return { body: known.body, status: 304, maxAgeS: maxAgeS(response), changed: false };
    }
    if (!response.ok) throw await errorOf(response);
    const body = await response.json();
    const etag = response.headers.get("etag");
    if (etag) remember(url, etag, body);
    return { body, status: response.status, maxAgeS: maxAgeS(response), changed: true };
  }

  async function get(path, params) {
    return (await request(path, params)).body;
  }

  // watchRuns(exchange, onRun) calls onRun(runId) whenever the exchange's current run changes, until the returned
  // function is called. It is the one place that learns about new runs: today it polls /market-status with
  // If-None-Match (a 304 until a new run is published) at the pace the API's Cache-Control announces, every 5 to 15 s.
  // To move to the server-sent event stream (GET /api/v1/stream), only this function changes: a fetch() of the
  // stream with the Authorization header (EventSource cannot send one), reading its events and calling onRun.
  function watchRuns(exchange, onRun, onError) {
    let stopped = false;
    let timer = null;
    let lastRunId = null;
    async function poll() {
      let delayS = POLL_MIN_S;
      try {
        const answer = await request("/api/v1/market-status", { exchange });
        const runId = answer.body.run_id;
        if (lastRunId !== null && runId !== lastRunId && !stopped) onRun(runId);
        lastRunId = runId;
        delayS = Math.min(POLL_MAX_S, Math.max(POLL_MIN_S, (answer.maxAgeS || 0) + 1));
      } catch (error) {
        if (onError && !stopped) onError(error);
        if (error.status === 401) return; // the key is gone: the app asks for another one
        delayS = error.retryAfterS || POLL_MIN_S;
      }
      if (!stopped) timer = window.setTimeout(poll, delayS * 1000);
    }
    poll();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }

  D.api = { ApiError, key, request, get, watchRuns };
})(window.Dantaro);

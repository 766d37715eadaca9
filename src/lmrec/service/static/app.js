// The lmrec web page: pick a user or type your interests, see recommendations with their
// explanations, move the diversity slider. Plain browser JavaScript, no build step.
//
// The API key is typed by the person using the page and kept in sessionStorage (this tab
// only, gone when it closes); it is sent as "Authorization: Bearer <key>" to the same origin
// and never put in a URL. Text from the server is shown with textContent, never as HTML.
"use strict";

(() => {
  const KEY_STORAGE = "lmrec.apiKey";
  const DEBOUNCE_MS = 200;
  const $ = (id) => document.getElementById(id);

  const results = $("results");
  const status = $("status");
  const slider = $("diversity");
  let sequence = 0; // answers to older queries are dropped
  let inFlight = null;
  let lastQuery = null; // the slider re-runs it
  let timer = 0;
  let memoryKey = readKey(); // the key in use (a copy of sessionStorage's)

  function readKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return "";
    }
  }

  function writeKey(key) {
    try {
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch {
      // storage disabled: the key lives until the page reloads
    }
    memoryKey = key;
    showKeyState();
  }

  function showKeyState() {
    const state = $("key-state");
    if (memoryKey) {
      // only the public key id: lmrec_<key id>_<secret>
      const id = memoryKey.split("_").slice(0, 2).join("_");
      state.textContent = `Using key ${id}_… (kept in this tab only; Forget key removes it).`;
      state.dataset.state = "set";
    } else {
      state.textContent =
        "No key yet. It stays in this browser tab only (sessionStorage) and is sent as " +
        "Authorization: Bearer; closing the tab forgets it.";
      state.dataset.state = "unset";
    }
  }

  function setStatus(text, kind) {
    status.textContent = text;
    status.className = kind || "";
  }

  function mode() {
    return document.querySelector('input[name="mode"]:checked').value;
  }

  function showMode() {
    const user = mode() === "user";
    $("user-field").hidden = !user;
    $("text-field").hidden = user;
  }

  function currentQuery() {
    const k = Math.min(100, Math.max(1, parseInt($("k").value, 10) || 10));
    const diversity = Number(slider.value);
    if (mode() === "user") {
      return { mode: "user", user: $("user-id").value.trim(), k, diversity };
    }
    return { mode: "text", text: $("interests").value.trim(), k, diversity };
  }

  function request(query) {
    const headers = { Authorization: `Bearer ${memoryKey}`, Accept: "application/json" };
    if (query.mode === "user") {
      const params = new URLSearchParams({
        k: String(query.k),
        diversity: String(query.diversity),
        explain: "true",
      });
      const path = `/v1/users/${encodeURIComponent(query.user)}/recommendations?${params}`;
      return { url: path, init: { method: "GET", headers } };
    }
    headers["Content-Type"] = "application/json";
    const body = JSON.stringify({
      text: query.text,
      k: query.k,
      diversity: query.diversity,
      explain: true,
    });
    return { url: "/v1/recommendations", init: { method: "POST", headers, body } };
  }

  function problem(code, payload) {
    const detail = payload && typeof payload.detail === "string" ? payload.detail : "";
    if (code === 401) {
      writeKey("");
      return "The key was refused (invalid or revoked). Enter another key.";
    }
    if (code === 403) return "This key cannot read recommendations: it needs the read scope.";
    if (code === 404) return detail || "Not found.";
    if (code === 422) return detail || "The query is not valid.";
    return `The server answered ${code}${detail ? `: ${detail}` : ""}.`;
  }

  async function recommend(query) {
    if (!memoryKey) {
      setStatus("Enter an API key first.", "error");
      $("api-key").focus();
      return;
    }
    if (query.mode === "user" && !query.user) {
      setStatus("Type a user id.", "error");
      return;
    }
    if (query.mode === "text" && !query.text) {
      setStatus("Type a sentence about what you like.", "error");
      return;
    }
    lastQuery = query;
    const mine = ++sequence;
    if (inFlight) inFlight.abort();
    inFlight = new AbortController();
    results.dataset.state = "loading";
    setStatus("Loading…", "busy");
    const { url, init } = request(query);
    let response;
    let payload = null;
    try {
      response = await fetch(url, {
        ...init,
        signal: inFlight.signal,
        cache: "no-store",
        credentials: "omit",
      });
      payload = await response.json().catch(() => null);
    } catch (error) {
      if (mine !== sequence) return; // replaced by a newer query
      results.dataset.state = "error";
      setStatus(`The service cannot be reached (${error.message}).`, "error");
      return;
    }
    if (mine !== sequence) return;
    if (!response.ok) {
      results.replaceChildren();
      results.dataset.state = "error";
      setStatus(problem(response.status, payload), "error");
      return;
    }
    render(payload, query);
  }

  function item(rec) {
    const li = document.createElement("li");
    li.className = "item";
    li.dataset.itemId = rec.item_id;

    const head = document.createElement("div");
    head.className = "head";
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = rec.title || rec.item_id;
    const id = document.createElement("span");
    id.className = "item-id";
    id.textContent = `#${rec.item_id}`;
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = Number.isFinite(rec.score) ? rec.score.toFixed(3) : "";
    head.append(title, id, score);
    li.append(head);

    if (rec.categories && rec.categories.length) {
      const cats = document.createElement("div");
      cats.className = "categories";
      for (const c of rec.categories) {
        const tag = document.createElement("span");
        tag.className = "tag";
        tag.textContent = c;
        cats.append(tag);
      }
      li.append(cats);
    }

    const why = rec.explanation && rec.explanation.sentence;
    if (why) {
      const p = document.createElement("p");
      p.className = "why";
      p.textContent = why;
      li.append(p);
    }
    return li;
  }

  function render(payload, query) {
    results.replaceChildren(...payload.items.map(item));
    results.dataset.state = "done";
    results.dataset.mode = query.mode; // what the list answers, for tests and styling
    results.dataset.diversity = query.diversity.toFixed(2);
    const who = query.mode === "user" ? `user ${query.user}` : "your interests";
    const n = payload.items.length;
    setStatus(
      n
        ? `${n} item${n === 1 ? "" : "s"} for ${who} · diversity ${query.diversity.toFixed(2)}`
        : `Nothing to recommend for ${who}.`,
      "",
    );
    $("model").textContent = `model ${payload.model_version}`;
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("api-key");
    const key = input.value.trim();
    input.value = "";
    if (!key) return;
    writeKey(key);
    setStatus("Key set.", "");
    if (lastQuery) recommend({ ...lastQuery, diversity: Number(slider.value) });
  });

  $("forget-key").addEventListener("click", () => {
    writeKey("");
    setStatus("Key forgotten.", "");
  });

  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", showMode);
  }

  $("query-form").addEventListener("submit", (event) => {
    event.preventDefault();
    recommend(currentQuery());
  });

  function showDiversity() {
    $("diversity-value").textContent = Number(slider.value).toFixed(2);
  }

  function requery() {
    clearTimeout(timer);
    if (lastQuery) recommend({ ...lastQuery, diversity: Number(slider.value) });
  }

  // the slider re-runs the last query: while dragging (debounced) and when released
  slider.addEventListener("input", () => {
    showDiversity();
    clearTimeout(timer);
    timer = setTimeout(requery, DEBOUNCE_MS);
  });
  slider.addEventListener("change", () => {
    showDiversity();
    requery();
  });

  showMode();
  showDiversity();
  showKeyState();
})();

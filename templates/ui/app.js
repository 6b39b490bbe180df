// podstack control panel. The server owns the state (L17-L19): this page renders the status it
// is sent and never guesses one from a failed request. Updates come from ONE live stream
// (/api/status/stream); when a stream is refused or goes quiet the page polls /api/status, and it
// goes back to the stream by itself. ONE timer (tick, every second) drives the clock, polling
// and retries. Every failed request is shown with its HTTP status, the API's error and hint.
"use strict";

const $ = (id) => document.getElementById(id);

const POLL_MS = 1000;          // polling fallback: ready shows within a second
const QUIET_MS = 25000;        // the stream repeats the status every 10 s; silence means a dead or buffering connection
const STREAM_RETRY_MS = 15000; // after a refused stream, poll this long before trying it again
const LOG_LIMIT = 2000;        // log lines kept in the page
const RULE = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const SETTINGS = { autoOpen: "podstack.autoOpen", chime: "podstack.chime", user: "podstack.user" };

const page = {
  status: null,        // the last status the server sent
  offsetMs: 0,         // server clock minus this browser's, from the status's now_ms
  receivedAt: 0,       // when the last status arrived (this browser's clock)
  mode: "connecting",  // connecting | live | polling | reconnecting | offline | login
  stream: null,
  lastEvent: 0,
  pollDue: 0,
  polling: false,
  streamRetryAt: 0,
  busy: new Set(),     // actions with a request in flight: launch, stop, add-user, fetch-models, login
  chosenUser: readSetting(SETTINGS.user),
  errors: new Map(),   // key -> {what, failure}
  optional: { sync: "unknown", models: "unknown" },
  optionalDue: { sync: 0, models: 0, usage: 0, outputs: 0, fleet: 0 },
  outputsKey: "",
  logs: { mode: "off", stream: null, lines: [], cursor: 0, paused: false, unseen: 0, pollDue: 0, polling: false, dirty: false },
  audio: null,
};

// ---------------------------------------------------------------- settings (localStorage)

function readSetting(key) {
  try { return window.localStorage.getItem(key); } catch (_) { return null; }
}
function writeSetting(key, value) {
  try {
    if (value === null) window.localStorage.removeItem(key);
    else window.localStorage.setItem(key, value);
  } catch (_) { /* storage refused (private mode): the choice lasts for this page only */ }
}
function flag(key) { return readSetting(key) === "1"; }

// ---------------------------------------------------------------- requests

// A failed request, as the page shows it.
class RequestFailed extends Error {
  constructor(method, path, status, error, hint) {
    super(`${method} /${path}: ${status ? "HTTP " + status + ": " : ""}${error}`);
    this.method = method;
    this.path = path;
    this.status = status;
    this.error = error;
    this.hint = hint;
  }
}

function pageTitle(html) {
  try {
    const doc = new DOMParser().parseFromString(html, "text/html");
    const text = (doc.title || (doc.querySelector("h1") || {}).textContent || "").trim();
    return text.replace(/\s+/g, " ").slice(0, 160);
  } catch (_) {
    return "";
  }
}

// What a non-2xx answer means: the API's {error, hint}, or a page from something in between.
function describe(method, path, response, text) {
  const status = response.status;
  const type = response.headers.get("content-type") || "";
  let body = null;
  if (type.includes("json")) {
    try { body = JSON.parse(text); } catch (_) { body = null; }
  }
  if (body && typeof body.error === "string") {
    return new RequestFailed(method, path, status, body.error, body.hint || "");
  }
  const title = type.includes("html") ? pageTitle(text) : text.trim().slice(0, 160);
  const from = title ? ` (${title})` : "";
  if (status === 524) {
    return new RequestFailed(method, path, status,
      `the proxy in front of the pod gave up waiting for an answer: a timeout${from}`,
      "the pod may still be working on it; the status shown is the pod's own, so check it before trying again");
  }
  if (status === 502 || status === 503 || status === 504 || (status >= 520 && status <= 530)) {
    return new RequestFailed(method, path, status,
      `the proxy in front of the pod could not reach it${from}`,
      "check that the pod is running and that its panel port is exposed");
  }
  const what = type.includes("html")
    ? `an HTML page came back instead of the panel API's answer${from}`
    : `${response.statusText || "an error"}${title ? ": " + title : ""}`;
  return new RequestFailed(method, path, status, what,
    type.includes("html") ? "something between this browser and the pod answered; check the address and the proxy" : "");
}

// Every request goes through here: a non-2xx answer or no answer at all is thrown, never swallowed.
async function api(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (err) {
    throw new RequestFailed(method, path, 0, `no answer (${err.message})`,
      "the pod or the network is down, or the pod is restarting; this page keeps trying");
  }
  const text = await response.text();
  if (response.status === 401 && path !== "api/login") showLogin(path.startsWith("api/status"));
  if (!response.ok) throw describe(method, path, response, text);
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch (_) {
    throw new RequestFailed(method, path, response.status,
      `the answer is not JSON (${pageTitle(text) || text.slice(0, 80)})`,
      "something between this browser and the pod rewrote the answer; check the proxy");
  }
}

// ---------------------------------------------------------------- errors

function showError(key, what, failure) {
  page.errors.set(key, { what, failure });
  renderErrors();
}
function clearError(key) {
  if (page.errors.delete(key)) renderErrors();
}
function renderErrors() {
  const list = $("error-list");
  list.replaceChildren(...[...page.errors].map(([key, { what, failure }]) => {
    const item = document.createElement("li");
    item.dataset.key = key;
    const text = document.createElement("div");
    const head = document.createElement("div");
    head.className = "what";
    head.textContent = `${what} failed` + (failure.status ? ` · HTTP ${failure.status}` : "");
    const message = document.createElement("div");
    message.className = "message";
    message.textContent = `${failure.method} ${failure.path}: ${failure.error}`;
    text.append(head, message);
    if (failure.hint) {
      const hint = document.createElement("div");
      hint.className = "hint";
      hint.textContent = `Hint: ${failure.hint}`;
      text.append(hint);
    }
    const dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.textContent = "Dismiss";
    dismiss.setAttribute("aria-label", `Dismiss: ${what} failed`);
    dismiss.onclick = () => clearError(key);
    item.append(text, dismiss);
    return item;
  }));
  $("errors").hidden = page.errors.size === 0;
}

// ---------------------------------------------------------------- formatting

function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}
function serverNow() { return Date.now() + page.offsetMs; }
function ago(ms) {
  if (!ms) return "never";
  const age = serverNow() - ms;
  return age < 2000 ? "just now" : `${duration(age)} ago`;
}
function bytes(n) {
  if (typeof n !== "number" || !isFinite(n)) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n < 10 && i ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}
function short(digest) {
  if (!digest) return "unknown";
  const [algo, hex] = digest.includes(":") ? digest.split(":") : ["", digest];
  return `${algo ? algo + ":" : ""}${hex.slice(0, 12)}`;
}
function pick(object, ...names) {
  for (const name of names) if (object && object[name] !== undefined && object[name] !== null) return object[name];
  return undefined;
}
function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}
function setText(id, text) {
  const node = $(id);
  if (node.textContent !== text) node.textContent = text;
}

// ---------------------------------------------------------------- connection

function setMode(mode) {
  page.mode = mode;
  const words = {
    connecting: "connecting…", live: "live", polling: "polling every second",
    reconnecting: "reconnecting…", offline: "no answer", login: "logged out",
  };
  let text = words[mode] || mode;
  if ((mode === "reconnecting" || mode === "offline") && page.receivedAt) {
    text += ` · last update ${duration(Date.now() - page.receivedAt)} ago`;
  }
  const node = $("connection");
  node.dataset.mode = mode;
  setText("connection", text);
  $("comfyui").classList.toggle("stale-data", mode === "reconnecting" || mode === "offline");
}

function openStream() {
  closeStream();
  if (!window.EventSource) { setMode("polling"); return; }
  const stream = new EventSource("api/status/stream");
  page.stream = stream;
  page.lastEvent = Date.now();
  stream.addEventListener("status", (event) => {
    page.lastEvent = Date.now();
    let status;
    try { status = JSON.parse(event.data); } catch (_) { return; }
    if (page.mode !== "live") setMode("live");
    clearError("status");
    apply(status);
  });
  stream.onerror = () => {
    if (stream.readyState === EventSource.CLOSED) {
      // Refused (not a stream: 401, 404, a proxy's page): poll, which shows why, and retry later.
      closeStream();
      page.streamRetryAt = Date.now() + STREAM_RETRY_MS;
      page.pollDue = 0;
      setMode("polling");
      poll();
    } else {
      setMode("reconnecting"); // the browser reconnects by itself (the server asks for 1 s)
    }
  };
}
function closeStream() {
  if (page.stream) page.stream.close();
  page.stream = null;
}

async function poll() {
  if (page.polling) return false;
  page.polling = true;
  try {
    apply(await api("GET", "api/status"));
    clearError("status");
    if (page.mode === "offline" || page.mode === "connecting" || page.mode === "login") {
      setMode(page.stream ? "reconnecting" : "polling");
    }
    // Back from no answer at all: try the stream again soon.
    if (!page.stream && !page.streamRetryAt) page.streamRetryAt = Date.now() + POLL_MS;
    return true;
  } catch (failure) {
    if (failure.status === 401) return false;
    showError("status", "Reading the status", failure);
    if (!page.stream) setMode("offline");
    return false;
  } finally {
    page.polling = false;
    page.pollDue = Date.now() + POLL_MS;
  }
}

// The page's one timer.
function tick() {
  const now = Date.now();
  if (page.mode !== "login") {
    if (page.stream && page.mode === "live" && now - page.lastEvent > QUIET_MS) {
      // A proxy that buffers the stream, or a connection that died without a word.
      closeStream();
      page.streamRetryAt = now + STREAM_RETRY_MS;
      setMode("polling");
    }
    const needPoll = page.mode !== "live" && (!page.stream || now - page.lastEvent > 3000);
    if (needPoll && now >= page.pollDue) poll();
    if (!page.stream && page.streamRetryAt && now >= page.streamRetryAt && page.status) {
      page.streamRetryAt = 0;
      openStream();
    }
    if (page.status) {
      tickOptional(now);
      tickLogs(now);
    }
    if (page.mode === "reconnecting" || page.mode === "offline") setMode(page.mode);
  }
  renderClock();
  setTimeout(tick, 1000 - (Date.now() % 1000) + 5);
}

// ---------------------------------------------------------------- login

// `everything`: the status itself needs the token, so nothing can be shown without it; else
// the status is open to all (runtime.anonymous_status) and the form sits above it.
function showLogin(everything) {
  const shown = !$("login").hidden;
  $("login").hidden = false;
  if (everything) {
    closeStream();
    closeLogStream();
    page.logs.mode = "off";
    setMode("login");
    $("panel").hidden = true;
    $("banner").hidden = true;
    clearError("status");
  }
  if (!shown) $("token").focus();
}

async function login(event) {
  event.preventDefault();
  const token = $("token").value;
  $("login-error").hidden = true;
  page.busy.add("login");
  $("login-button").disabled = true;
  try {
    await api("POST", "api/login", { token });
    $("token").value = "";
    $("login").hidden = true;
    setMode("connecting");
    await begin();
  } catch (failure) {
    $("login-error").textContent = failure.status === 401
      ? `${failure.error}. ${failure.hint}` : `${failure.message}${failure.hint ? " — " + failure.hint : ""}`;
    $("login-error").hidden = false;
    $("token").focus();
  } finally {
    page.busy.delete("login");
    $("login-button").disabled = false;
  }
}

// ---------------------------------------------------------------- status

function apply(status) {
  // Answers to a start or stop race the stream on another connection: never step back in time
  // (by a few seconds at most, so a server clock set back does not freeze the page).
  if (page.status && status.now_ms < page.status.now_ms && page.status.now_ms - status.now_ms < 5000) return;
  const previous = page.status && page.status.services.comfyui.state;
  page.status = status;
  page.offsetMs = status.now_ms - Date.now();
  page.receivedAt = Date.now();
  $("panel").hidden = false;
  render();
  const state = status.services.comfyui.state;
  if (previous && previous !== "ready" && state === "ready") whenReady(status);
  if (previous !== state) page.optionalDue.outputs = 0;
}


function render() {
  const s = page.status;
  if (!s) return;
  setText("title", `${s.stack.name} ${s.stack.version}`);
  setText("meta", `pod ${s.pod} · ${s.stack.digest ? short(s.stack.digest) : "digest unknown"}`);
  renderComfy(s);
  renderControls(s);
  renderGpu(s);
  renderBuild(s);
  renderBanner(s);
  renderLinks(s);
  renderClock();
}

function stateWords(c) {
  switch (c.state) {
    case "stopped": return "Stopped";
    case "starting": return `Starting · ${c.stage || "launching"}`;
    case "ready": return "Ready";
    case "stopping": return "Stopping";
    case "backing-off": return `Restarting · attempt ${c.attempt + 1}`;
    case "failed": return `Failed: ${c.reason}`;
    default: return c.state;
  }
}

function renderComfy(s) {
  const c = s.services.comfyui;
  $("state").dataset.state = c.state;
  setText("state-text", stateWords(c));
  const starting = c.state === "starting";
  $("progress").hidden = !starting;
  if (starting) {
    const percent = Math.max(0, Math.min(100, c.percent || 0));
    $("progress").setAttribute("aria-valuenow", String(percent));
    $("progress").setAttribute("aria-valuetext", `${c.stage}, ${percent}%`);
    $("progress-fill").style.width = `${percent}%`;
  }
  let detail = "";
  if (c.state === "ready") {
    detail = `for ${s.user}` + (c.last_start_s != null ? ` · started in ${c.last_start_s.toFixed(1)} s` : "");
  } else if (starting) {
    detail = `for ${s.user} · ${c.percent}%`;
  } else if (c.state === "backing-off") {
    detail = `${c.reason}\n${c.hint}`;
  } else if (c.state === "stopped" && s.users.length === 0) {
    detail = "This pod has no users yet.";
  }
  setText("detail", detail);
  const failed = c.state === "failed";
  $("failure").hidden = !failed;
  if (failed) {
    setText("failure-hint", c.hint || "look at the log lines below");
    const lines = $("failure-lines");
    const text = (c.last_lines || []).join("\n") || "(no log lines)";
    if (lines.textContent !== text) {
      lines.textContent = text;
      lines.scrollTop = lines.scrollHeight; // the error is at the end
    }
  }
}

// The parts of the status that move with the clock: elapsed times and ages.
function renderClock() {
  const s = page.status;
  if (!s) return;
  const c = s.services.comfyui;
  let elapsed = "";
  if (c.state === "starting" || c.state === "stopping") elapsed = duration(serverNow() - c.since);
  else if (c.state === "ready") elapsed = `up ${duration(serverNow() - c.since)}`;
  else if (c.state === "backing-off") elapsed = `next try in ${duration(c.until - serverNow())}`;
  else if (c.state === "failed") elapsed = ago(c.since);
  setText("elapsed", elapsed);
}

function selectedUser() { return $("user").value; }

function renderControls(s) {
  const select = $("user");
  const wanted = page.chosenUser && s.users.includes(page.chosenUser) ? page.chosenUser
    : s.user && s.users.includes(s.user) ? s.user : (s.users[0] || "");
  if ([...select.options].map((o) => o.value).join("\n") !== s.users.join("\n")) {
    select.replaceChildren(...s.users.map((name) => new Option(name, name)));
  }
  if (select.value !== wanted) select.value = wanted;
  setText("outputs-user", wanted ? `of ${wanted}` : "");

  const c = s.services.comfyui;
  const user = selectedUser();
  const other = Boolean(s.user) && user !== s.user;
  const launch = $("launch");
  const launching = page.busy.has("launch");
  launch.classList.toggle("busy", launching);
  launch.setAttribute("aria-busy", String(launching));
  setText("launch", launching ? "Launching…"
    : other && c.state !== "stopped" && c.state !== "failed" ? `Switch to ${user}` : "Launch");
  const settled = c.state === "stopped" || c.state === "failed";
  launch.disabled = launching || !user || page.busy.has("stop") || c.state === "starting"
    || c.state === "stopping" || (!settled && !other);

  const stopping = page.busy.has("stop");
  const stop = $("stop");
  stop.classList.toggle("busy", stopping);
  stop.setAttribute("aria-busy", String(stopping));
  setText("stop", stopping ? "Stopping…" : "Stop");
  stop.disabled = stopping || launching || c.state === "stopped" || c.state === "stopping";

  const open = $("open");
  const ready = c.state === "ready" && Boolean(s.comfyui_url);
  open.hidden = !ready;
  if (s.comfyui_url && open.getAttribute("href") !== s.comfyui_url) open.href = s.comfyui_url;

  $("add-user").hidden = !s.allow_new_users;
}

function renderGpu(s) {
  const list = $("gpu-list");
  if (!s.gpus.length) {
    list.replaceChildren(el("li", "No NVIDIA GPU: ComfyUI runs on the CPU"));
  } else {
    list.replaceChildren(...s.gpus.map((gpu) => {
      const parts = [gpu.name];
      if (gpu.memory_mib) parts.push(`${(gpu.memory_mib / 1024).toFixed(gpu.memory_mib % 1024 ? 1 : 0)} GiB`);
      parts.push(gpu.arch ? `compute capability ${gpu.arch}` : "compute capability unknown");
      if (gpu.driver) parts.push(`driver ${gpu.driver}`);
      return el("li", (s.gpus.length > 1 ? `${gpu.index}: ` : "") + parts.join(" · "));
    }));
  }
  const requested = s.attention.requested;
  const req = $("att-requested");
  req.replaceChildren(document.createTextNode(requested.kernel + (requested.flag ? ` (${requested.flag})` : "")));
  if (requested.why) req.append(el("small", requested.why));
  const confirmed = s.attention.confirmed;
  setText("att-confirmed", !confirmed ? "not yet: ComfyUI prints it while it starts"
    : confirmed.kind === "using" ? confirmed.kernel : `sage attention failing: ${confirmed.error}`);
  $("att-confirmed").className = !confirmed ? "muted" : s.attention.mismatch ? "bad" : "ok";
  const mismatch = $("att-mismatch");
  mismatch.hidden = !s.attention.mismatch;
  if (s.attention.mismatch) {
    mismatch.replaceChildren(el("strong", "Mismatch: "), document.createTextNode(s.attention.mismatch));
  }
}

function freshnessWords(v) {
  const f = v.freshness;
  if (f.state === "current") return ["current: the build this pod should run", "ok"];
  if (f.state === "stale") return [`stale: expected ${short(f.expected)} (${f.source})`, "bad"];
  return [`not checked against a deploy (${f.why})`, "muted"];
}

function renderBuild(s) {
  setText("build-stack", `${s.stack.name} ${s.stack.version}`);
  const digest = $("build-digest");
  setText("build-digest", short(s.stack.digest));
  digest.title = s.stack.digest || "";
  const v = s.verification;
  const [words, tone] = freshnessWords(v);
  const drift = v.files.length + v.packages.length;
  const check = $("build-check");
  check.replaceChildren(el("span", words, tone));
  check.append(el("small", drift
    ? `${v.files.length} file(s) and ${v.packages.length} package(s) differ from the build`
    : "files and packages as built" + (v.not_checked.length ? ` (not checked: ${v.not_checked.join("; ")})` : "")));
  setText("build-podstack", `podstack ${s.stack.podstack} · up ${duration((s.uptime_s || 0) * 1000)}`);
  const notes = $("warnings");
  const key = s.warnings.join("\n");
  if (notes.dataset.key !== key) {
    notes.dataset.key = key;
    notes.replaceChildren(...s.warnings.map((line) => el("li", line)));
  }
}

function fileDrift(d) { return `${d.drift} ${d.path}`; }
function packageDrift(d) {
  return d.drift === "version" ? `package ${d.name}: expected ${d.expected}, found ${d.found}`
    : `package ${d.name}: ${d.expected} expected, not installed`;
}

// A pod that is not the build it should be says so at the top: what runs, what was expected.
function renderBanner(s) {
  const v = s.verification;
  const stale = v.freshness.state === "stale";
  const drifted = v.files.length > 0 || v.packages.length > 0;
  const banner = $("banner");
  banner.hidden = !(stale || drifted);
  if (banner.hidden) return;
  banner.dataset.kind = "bad";
  setText("banner-title", stale && drifted ? "This pod runs an old build, and its files were changed"
    : stale ? "This pod runs an old build" : "This pod's files differ from its build");
  const lines = [];
  if (stale) {
    lines.push(`running ${v.stack} ${v.version}, digest ${v.freshness.running}`);
    lines.push(`expected digest ${v.freshness.expected} (from ${v.freshness.source})`);
  }
  lines.push(...v.files.map(fileDrift), ...v.packages.map(packageDrift));
  const key = lines.join("\n");
  const list = $("banner-lines");
  if (list.dataset.key !== key) {
    list.dataset.key = key;
    list.replaceChildren(...lines.map((line) => el("li", line)));
  }
  const hints = [];
  if (stale) hints.push("Redeploy the pod with the image tagged for the expected digest.");
  if (v.files.length) hints.push("Restart the pod from its image to restore its files.");
  if (v.packages.length) hints.push("A package replaced at run time needs a pin in the stack (or a restart of the pod).");
  setText("banner-hint", hints.join(" "));
}

function renderLinks(s) {
  const links = $("links");
  const parts = [];
  const jupyter = s.services.jupyter;
  if (jupyter.state === "ready" && s.jupyter_url) {
    const a = el("a", "JupyterLab");
    a.href = s.jupyter_url;
    a.target = "_blank";
    a.rel = "noopener";
    parts.push(a);
  } else if (jupyter.state !== "disabled") {
    parts.push(el("span", `JupyterLab: ${jupyter.state}${jupyter.reason ? " — " + jupyter.reason : ""}`, "muted"));
  }
  const key = parts.map((p) => p.outerHTML).join("");
  if (links.dataset.key !== key) {
    links.dataset.key = key;
    links.replaceChildren(...parts);
  }
}

// ---------------------------------------------------------------- when ready

function prepareAudio() {
  if (!flag(SETTINGS.chime)) return;
  try {
    if (!page.audio) page.audio = new (window.AudioContext || window.webkitAudioContext)();
    if (page.audio.state === "suspended") page.audio.resume();
  } catch (_) {
    page.audio = null;
  }
}

function chime() {
  if (!flag(SETTINGS.chime) || document.visibilityState !== "visible") return;
  prepareAudio();
  const audio = page.audio;
  if (!audio) return;
  const start = audio.currentTime + 0.02;
  [[660, 0], [880, 0.16]].forEach(([frequency, offset]) => {
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.type = "sine";
    tone.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, start + offset);
    gain.gain.exponentialRampToValueAtTime(0.12, start + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.3);
    tone.connect(gain).connect(audio.destination);
    tone.start(start + offset);
    tone.stop(start + offset + 0.32);
  });
}

function note(text) {
  const node = $("note");
  node.textContent = text;
  node.hidden = !text;
}

function whenReady(status) {
  chime();
  if (flag(SETTINGS.autoOpen) && status.comfyui_url) {
    const tab = window.open(status.comfyui_url, "_blank");
    if (tab) tab.opener = null;
    else note("The browser blocked opening ComfyUI in a new tab: allow pop-ups for this page, or use Open ComfyUI.");
  }
}

// ---------------------------------------------------------------- actions

async function act(key, what, method, path, body) {
  page.busy.add(key);
  note("");
  render();
  try {
    const status = await api(method, path, body);
    clearError(key);
    if (status && status.services) apply(status);
    return true;
  } catch (failure) {
    showError(key, what, failure);
    return false;
  } finally {
    page.busy.delete(key);
    render();
  }
}

function launch() {
  prepareAudio();
  const user = selectedUser();
  page.chosenUser = user;
  writeSetting(SETTINGS.user, user);
  act("launch", `Launching ComfyUI for ${user}`, "POST", "api/start", { user });
}

function stop() {
  act("stop", "Stopping ComfyUI", "POST", "api/stop");
}

function nameProblem(name) {
  if (!name) return "Type a name.";
  if (name.length > 32) return `“${name}” is ${name.length} characters; the most is 32.`;
  if (!RULE.test(name)) {
    return `“${name}” does not fit the rule: lower-case letters, digits, _ and -, starting with a letter or digit.`;
  }
  return "";
}

function checkNewUser(showEmpty) {
  const input = $("new-user");
  const problem = input.value || showEmpty ? nameProblem(input.value) : "";
  input.setAttribute("aria-invalid", String(Boolean(problem)));
  $("new-user-error").textContent = problem;
  $("new-user-error").hidden = !problem;
  return !problem;
}

async function addUser(event) {
  event.preventDefault();
  if (!checkNewUser(true)) {
    $("new-user").focus();
    return;
  }
  const name = $("new-user").value;
  $("add-user-button").disabled = true;
  const ok = await act("add-user", `Adding the user ${name}`, "POST", "api/users", { name });
  $("add-user-button").disabled = false;
  if (ok) {
    $("new-user").value = "";
    page.chosenUser = name;
    writeSetting(SETTINGS.user, name);
    render();
    $("user").focus();
  }
}

// ---------------------------------------------------------------- sync, models, usage, outputs

// Sync and models show when the pod has them: a 404 (no [sync]) hides the section, and so does
// a stack without models (the draw function hides it).
async function optional(name, path, draw) {
  try {
    const data = await api("GET", path);
    page.optional[name] = "present";
    $(name).hidden = false;
    clearError(name);
    draw(data);
  } catch (failure) {
    if (failure.status === 404) {
      page.optional[name] = "absent";
      $(name).hidden = true;
      clearError(name);
    } else {
      showError(name, `Reading ${name}`, failure);
    }
  }
}

function tickOptional(now) {
  const due = page.optionalDue;
  if (page.optional.sync !== "absent" && now >= due.sync) {
    due.sync = now + 10000;
    optional("sync", "api/sync", drawSync);
  }
  if (page.optional.models !== "absent" && now >= due.models) {
    due.models = now + 15000;
    optional("models", "api/models", drawModels);
  }
  if (now >= due.fleet) {
    due.fleet = now + 10000;
    optional("fleet", "api/fleet", drawFleet);
  }
  if (now >= due.usage) {
    due.usage = now + 60000;
    loadUsage();
  }
  if (now >= due.outputs) {
    due.outputs = now + 15000;
    loadOutputs();
  }
}

// GET /api/sync: {folders: [...]}, {users: [{user, folders}]} or a list; see the README.
function syncFolders(data) {
  const list = Array.isArray(data) ? data : data.folders || [];
  const nested = (data.users || []).flatMap((u) => (u.folders || []).map((f) => ({ user: u.user, ...f })));
  return list.concat(nested);
}

function drawSync(data) {
  const rows = [];
  const problems = [];
  const service = (data && data.service) || {};
  if (service.state === "failed") {
    const at = data.restart_at_ms;
    const item = el("li", `rclone failed: ${service.reason || "see the sync log"}` +
      (typeof at === "number" ? ` It is started again in ${duration(Math.max(0, at - Date.now()))}. ` : " "));
    const restart = el("button", "Restart the sync now");
    restart.type = "button";
    restart.addEventListener("click", () =>
      act("restart-sync", "Restarting the sync", "POST", "api/sync/restart", {}));
    item.append(restart);
    problems.push(item);
  }
  for (const f of syncFolders(data || {})) {
    const user = pick(f, "user") || "";
    const folder = pick(f, "folder", "path", "name") || "";
    const last = pick(f, "last_success_ms", "last_upload_ms", "last_success");
    const lag = pick(f, "lag_s", "lag_seconds");
    const speed = pick(f, "speed_bps", "bytes_per_second", "speed");
    const row = document.createElement("tr");
    row.append(el("td", user), el("td", folder + (f.mode ? ` (${f.mode})` : "")),
      el("td", typeof last === "number" ? ago(last) : last || "never"),
      el("td", String(pick(f, "pending", "pending_files") ?? "")),
      el("td", typeof lag === "number" ? duration(lag * 1000) : ""),
      el("td", typeof speed === "number" && speed > 0 ? `${bytes(speed)}/s` : ""));
    rows.push(row);
    const error = pick(f, "error", "last_error");
    if (error) {
      const item = el("li", `${user}/${folder}: ${typeof error === "string" ? error : error.error || JSON.stringify(error)}`);
      const hint = pick(f, "hint") || (error && error.hint);
      if (hint) item.append(el("div", `Hint: ${hint}`, "hint"));
      problems.push(item);
    }
    const held = pick(f, "deletions_held");
    if (typeof held === "number" && held > 0) {
      const item = el("li", `${user}/${folder}: ${held} deletion(s) held: sync.max_delete files of this folder were deleted within sync.delete_window. `);
      const release = el("button", "Release the deletions");
      release.type = "button";
      release.addEventListener("click", () => {
        if (!confirm(`Delete ${held} file(s) of ${folder}/${user} on the remote (to the trash when it is on)?`)) return;
        act(`release-${user}-${folder}`, `Releasing the deletions held in ${folder}/${user}`,
          "POST", "api/sync/release", { user, folder });
      });
      item.append(release);
      problems.push(item);
    }
  }
  if (!rows.length) {
    const row = document.createElement("tr");
    const cell = el("td", "Nothing synced yet.", "muted");
    cell.colSpan = 6;
    row.append(cell);
    rows.push(row);
  }
  $("sync-rows").replaceChildren(...rows);
  $("sync-problems").replaceChildren(...problems);
}

// GET /api/models: {folder, models: [{dest, url, size, state, bytes, total, bytes_per_s, reason, hint}]}.
function drawModels(data) {
  const models = Array.isArray(data) ? data : (data && data.models) || [];
  $("models").hidden = models.length === 0;
  let missing = 0;
  let downloading = false;
  const rows = models.map((m) => {
    const state = pick(m, "state") || "unknown";
    const size = pick(m, "size", "bytes_total", "total_bytes");
    const done = pick(m, "bytes", "done", "bytes_done");
    if (state === "missing" || state === "failed") missing += 1;
    if (state === "downloading") downloading = true;
    const row = document.createElement("tr");
    const stateCell = el("td", state, state === "present" ? "ok" : state === "failed" ? "bad" : "warn");
    if (state === "downloading" && typeof size === "number" && size > 0 && typeof done === "number") {
      const percent = Math.min(100, Math.round((done / size) * 100));
      const speed = pick(m, "bytes_per_s", "speed_bps");
      stateCell.textContent = `downloading ${percent}%` + (typeof speed === "number" ? ` · ${bytes(speed)}/s` : "");
      const bar = el("div", undefined, "progress");
      bar.setAttribute("role", "progressbar");
      bar.setAttribute("aria-valuenow", String(percent));
      bar.setAttribute("aria-valuemin", "0");
      bar.setAttribute("aria-valuemax", "100");
      bar.setAttribute("aria-label", `${pick(m, "name", "dest")} download`);
      const fill = el("div", undefined, "fill");
      fill.style.width = `${percent}%`;
      bar.append(fill);
      stateCell.append(bar);
    }
    const reason = pick(m, "error", "reason");
    if (reason) stateCell.append(el("small", ` ${reason}${m.hint ? " — " + m.hint : ""}`));
    row.append(el("td", pick(m, "name", "dest", "path") || ""), stateCell, el("td", bytes(size)));
    return row;
  });
  $("model-rows").replaceChildren(...rows);
  const button = $("fetch-models");
  button.disabled = page.busy.has("fetch-models") || missing === 0;
  setText("fetch-models", page.busy.has("fetch-models") ? "Fetching…" : missing ? `Fetch ${missing} missing` : "Nothing to fetch");
  if (downloading) page.optionalDue.models = Date.now() + 2000;
}

async function fetchModels() {
  page.busy.add("fetch-models");
  $("fetch-models").disabled = true;
  setText("fetch-models", "Fetching…");
  try {
    await api("POST", "api/models/fetch");
    clearError("fetch-models");
  } catch (failure) {
    showError("fetch-models", "Fetching the missing models", failure);
  } finally {
    page.busy.delete("fetch-models");
    page.optionalDue.models = 0;
    optional("models", "api/models", drawModels);
  }
}

// GET /api/fleet: every pod's heartbeat on this volume; stale builds and silent pods stand out.
function drawFleet(fleet) {
  const reference = fleet.reference;
  setText("fleet-reference", reference
    ? `Expected build ${short(reference.digest)} (${reference.source})`
    : "No pod on this volume reports a digest.");
  const rows = fleet.pods.map((p) => {
    const row = document.createElement("tr");
    const state = p.state === "silent" ? `silent for ${duration(p.since_beat_ms)}` : "live";
    const build = `${p.stack} ${p.version} ${p.digest ? short(p.digest) : "digest unknown"}`;
    row.append(
      el("td", p.pod),
      el("td", state, p.state === "silent" ? "warn" : ""),
      el("td", p.stale ? `STALE ${build}` : build, p.stale ? "warn" : ""),
      el("td", p.users.length ? p.users.join(", ") : "—"),
      el("td", p.gpus.length ? p.gpus.join(", ") : "CPU"),
      el("td", `${duration(p.since_beat_ms)} ago`),
    );
    return row;
  });
  $("fleet-rows").replaceChildren(...rows);
  $("fleet-problems").replaceChildren(
    ...fleet.problems.map((p) => el("li", `Ignored ${p.file}: ${p.problem}`)));
}

async function loadUsage() {
  try {
    const usage = await api("GET", "api/usage");
    clearError("usage");
    setText("usage-month", `in ${usage.month}`);
    const rows = usage.users.map((u) => {
      const row = document.createElement("tr");
      if (page.status && u.user === selectedUser()) row.setAttribute("aria-current", "true");
      row.append(el("td", u.user), el("td", u.gpu_hours.toFixed(2), "num"), el("td", String(u.sessions), "num"));
      return row;
    });
    if (!rows.length) {
      const row = document.createElement("tr");
      const cell = el("td", "No GPU time this month yet.", "muted");
      cell.colSpan = 3;
      row.append(cell);
      rows.push(row);
    }
    $("usage-rows").replaceChildren(...rows);
  } catch (failure) {
    if (failure.status !== 401) showError("usage", "Reading the GPU hours", failure);
  }
}

async function loadOutputs() {
  const user = selectedUser();
  if (!user) return;
  try {
    const list = await api("GET", `api/outputs?user=${encodeURIComponent(user)}`);
    clearError("outputs");
    if (user !== selectedUser()) return;
    const key = user + "\n" + list.images.map((i) => `${i.path}@${i.modified_ms}`).join("\n");
    if (key === page.outputsKey) return;
    page.outputsKey = key;
    const links = list.images.map((image) => {
      const href = `api/outputs/${encodeURIComponent(user)}/${image.path.split("/").map(encodeURIComponent).join("/")}`;
      const a = el("a");
      a.href = href;
      a.target = "_blank";
      a.rel = "noopener";
      a.title = `${image.path} · ${bytes(image.bytes)}`;
      const img = el("img");
      img.loading = "lazy";
      img.decoding = "async";
      img.alt = image.path;
      img.src = `${href}?v=${image.modified_ms}`;
      a.append(img);
      return a;
    });
    $("thumbs").replaceChildren(...links);
    $("outputs-empty").hidden = links.length > 0;
  } catch (failure) {
    if (failure.status !== 401) showError("outputs", `Listing the outputs of ${user}`, failure);
  }
}

// ---------------------------------------------------------------- logs

// Logs come from one stream of every service (the ring's backlog first); when the stream is
// refused, /api/logs is polled from the last cursor instead.
function openLogStream() {
  closeLogStream();
  const logs = page.logs;
  if (!window.EventSource) {
    logs.mode = "poll";
    return;
  }
  logs.mode = "stream";
  const stream = new EventSource(`api/logs/stream?after=${logs.cursor}`);
  logs.stream = stream;
  stream.addEventListener("line", (event) => {
    try { addLines([JSON.parse(event.data)]); } catch (_) { /* a line we cannot read is skipped */ }
  });
  stream.addEventListener("dropped", (event) => {
    addLines([{ cursor: logs.cursor, service: "", time_ms: Date.now(), text: `[panel] ${event.data}` }]);
  });
  stream.onerror = () => {
    if (stream.readyState === EventSource.CLOSED) {
      closeLogStream();
      logs.mode = "poll";
      logs.pollDue = 0;
    }
  };
}
function closeLogStream() {
  if (page.logs.stream) page.logs.stream.close();
  page.logs.stream = null;
}

async function tickLogs(now) {
  const logs = page.logs;
  if (logs.mode === "stream" && !logs.stream) openLogStream();
  if (logs.mode !== "poll" || logs.polling || now < logs.pollDue) return;
  logs.polling = true;
  try {
    const answer = await api("GET", `api/logs?after=${logs.cursor}`);
    clearError("logs");
    addLines(answer.lines);
  } catch (failure) {
    if (failure.status !== 401) showError("logs", "Reading the logs", failure);
  } finally {
    logs.polling = false;
    logs.pollDue = Date.now() + 2000;
  }
}

function addLines(lines) {
  const logs = page.logs;
  for (const line of lines) {
    if (line.cursor > logs.cursor) logs.cursor = line.cursor;
    logs.lines.push(line);
    // A finished prompt wrote its images: show them now rather than at the next refresh.
    if (line.service === "comfyui" && line.text.includes("Prompt executed in")) page.optionalDue.outputs = 0;
    if (logs.paused && visible(line)) logs.unseen += 1;
  }
  if (logs.lines.length > LOG_LIMIT) logs.lines.splice(0, logs.lines.length - LOG_LIMIT);
  scheduleLogRender();
}

function visible(line) {
  const service = $("log-service").value;
  const filter = $("log-filter").value.trim().toLowerCase();
  return (!service || line.service === service) && (!filter || line.text.toLowerCase().includes(filter));
}

function shownLines() {
  const all = !$("log-service").value;
  return page.logs.lines.filter(visible).map((line) => (all ? `${line.service.padEnd(10)} ` : "") + line.text);
}

function scheduleLogRender() {
  const logs = page.logs;
  if (logs.paused) {
    setText("log-pause", logs.unseen ? `Resume (${logs.unseen} new)` : "Resume");
    return;
  }
  if (logs.dirty) return;
  logs.dirty = true;
  window.requestAnimationFrame(renderLogs);
}

function renderLogs() {
  const logs = page.logs;
  logs.dirty = false;
  const pre = $("log");
  const shown = shownLines();
  const service = $("log-service");
  const text = shown.length ? shown.join("\n")
    : $("log-filter").value.trim() ? "(no line matches the filter)"
    : `(no ${service.value ? service.selectedOptions[0].textContent + " " : ""}lines yet)`;
  if (pre.textContent !== text) pre.textContent = text;
  if ($("log-follow").checked) pre.scrollTop = pre.scrollHeight;
}

function togglePause() {
  const logs = page.logs;
  logs.paused = !logs.paused;
  logs.unseen = 0;
  $("log-pause").setAttribute("aria-pressed", String(logs.paused));
  setText("log-pause", logs.paused ? "Resume" : "Pause");
  if (!logs.paused) scheduleLogRender();
}

async function copyLogs() {
  const lines = shownLines();
  const text = lines.join("\n");
  let copied = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      copied = true;
    }
  } catch (_) {
    copied = false;
  }
  if (!copied) {
    // Plain http (no Clipboard API): copy through a selection.
    const area = el("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.append(area);
    area.select();
    try { copied = document.execCommand("copy"); } catch (_) { copied = false; }
    area.remove();
  }
  setText("log-note", copied ? `Copied ${lines.length} line(s).` : "The browser did not allow copying; select the lines and copy them by hand.");
}

// ---------------------------------------------------------------- start

async function begin() {
  for (const key of Object.keys(page.optionalDue)) page.optionalDue[key] = 0;
  page.logs.mode = "stream";
  if (await poll()) {
    openStream();
    openLogStream();
    scheduleLogRender();
  }
}

function wire() {
  $("launch").addEventListener("click", launch);
  $("stop").addEventListener("click", stop);
  $("user").addEventListener("change", () => {
    page.chosenUser = selectedUser();
    writeSetting(SETTINGS.user, page.chosenUser);
    page.outputsKey = "";
    page.optionalDue.outputs = 0;
    render();
    loadOutputs();
  });
  $("add-user-form").addEventListener("submit", addUser);
  $("new-user").addEventListener("input", () => checkNewUser(false));
  $("login-form").addEventListener("submit", login);
  $("fetch-models").addEventListener("click", fetchModels);
  for (const [id, key] of [["auto-open", SETTINGS.autoOpen], ["chime", SETTINGS.chime]]) {
    const box = $(id);
    box.checked = flag(key);
    box.addEventListener("change", () => {
      writeSetting(key, box.checked ? "1" : null);
      if (id === "chime" && box.checked) prepareAudio();
    });
  }
  $("log-service").addEventListener("change", scheduleLogRender);
  $("log-filter").addEventListener("input", scheduleLogRender);
  $("log-follow").addEventListener("change", scheduleLogRender);
  $("log-pause").addEventListener("click", togglePause);
  $("log-copy").addEventListener("click", copyLogs);
}

wire();
begin();
tick();

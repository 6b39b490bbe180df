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
const SETTINGS = {
  autoOpen: "podstack.autoOpen", chime: "podstack.chime", user: "podstack.user",
  logTimes: "podstack.logTimes", logWrap: "podstack.logWrap",
};
const HOUR_MS = 3600000;
// A log line that reads as an error or a warning is highlighted.
const ERROR_LINE = /\b(error|errors|exception|traceback|failed|fatal|critical|killed|out of memory)\b|IMPORT FAILED|Error:/i;
const WARNING_LINE = /\b(warn|warning|deprecated)\b/i;

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
  chosenSlot: "",      // the slot picked to launch in; "" lets the pod choose a free one
  errors: new Map(),   // key -> {what, failure}
  noAnswer: null,      // the failure of the last read the pod did not answer; null once it does
  optional: { sync: "unknown", models: "unknown", host: "unknown" },
  optionalDue: { sync: 0, models: 0, usage: 0, outputs: 0, fleet: 0, host: 0 },
  host: { samples: [], interval_s: 5 },
  outputsKey: "",
  logs: { mode: "off", stream: null, lines: [], cursor: 0, paused: false, unseen: 0, pollDue: 0, polling: false, dirty: false, key: "" },
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
    this.fromApi = false; // the panel API's own {error, hint}, not a proxy's page or silence
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
    const failure = new RequestFailed(method, path, status, body.error, body.hint || "");
    failure.fromApi = true;
    failure.body = body; // a 409 names who holds the slot and their queue
    return failure;
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
// A read the page makes by itself (status, logs, sync…) that found no pod behind the address
// (no answer, or a proxy saying it cannot reach it) is ONE banner, whatever the number of
// reads; other failures are shown as they are, each once.
function unreachable(failure) {
  const s = failure.status;
  return s === 0 || (!failure.fromApi && (s === 502 || s === 503 || s === 504 || (s >= 520 && s <= 530)));
}
function readFailed(key, what, failure) {
  if (failure.status === 401) return;
  if (unreachable(failure)) {
    noAnswer(failure);
    return;
  }
  showError(key, what, failure);
}
function noAnswer(failure) {
  const first = !page.noAnswer;
  page.noAnswer = failure;
  if (page.mode !== "login") setMode("offline");
  if (first) {
    setText("connection-detail", `${failure.method} /${failure.path}: ${failure.status ? "HTTP " + failure.status + ": " : ""}${failure.error}. `
      + "This page keeps trying and clears this note as soon as the pod answers; until then it shows the last state the pod reported.");
    $("connection-banner").hidden = false;
  }
  renderTitle();
}
// The pod answered again: the banner goes at once, and every section is read again now.
function answered() {
  if (!page.noAnswer) return;
  page.noAnswer = null;
  $("connection-banner").hidden = true;
  for (const key of Object.keys(page.optionalDue)) page.optionalDue[key] = 0;
  renderTitle();
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
  renderTitle();
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
    answered();
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
    } else if (page.mode !== "offline") {
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
    answered();
    if (page.mode === "offline" || page.mode === "connecting" || page.mode === "login") {
      setMode(page.stream ? "reconnecting" : "polling");
    }
    // Back from no answer at all: try the stream again soon.
    if (!page.stream && !page.streamRetryAt) page.streamRetryAt = Date.now() + POLL_MS;
    return true;
  } catch (failure) {
    if (failure.status === 401) return false;
    readFailed("status", "Reading the status", failure);
    if (!page.stream && page.mode !== "login") setMode("offline");
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
    $("logout").hidden = true;
    page.noAnswer = null;
    $("connection-banner").hidden = true;
    clearError("status");
    renderTitle();
  }
  if (!shown) $("token").focus();
}

async function logout() {
  try {
    await api("POST", "api/logout");
    clearError("logout");
  } catch (failure) {
    showError("logout", "Logging out", failure);
    return;
  }
  page.status = null;
  page.logs.lines = [];
  page.logs.cursor = 0;
  showLogin(true);
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
    $("login-error").textContent = failure.status === 401 || failure.status === 429
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
  const before = page.status && shownSlot(page.status);
  page.status = status;
  page.offsetMs = status.now_ms - Date.now();
  page.receivedAt = Date.now();
  $("panel").hidden = false;
  render();
  const after = shownSlot(status);
  const previous = before && before.slot === after.slot && before.user === after.user ? before.comfyui.state : null;
  const state = after.comfyui.state;
  if (previous && previous !== "ready" && state === "ready") whenReady(after.url);
  if (previous !== state) {
    page.optionalDue.outputs = 0;
    page.optionalDue.usage = 0;
  }
  if (status.host) addHostSamples([status.host]);
  // The running prompt's progress moves with every status, not only with each sample.
  const samples = page.host.samples;
  if (samples.length) renderQueue(samples[samples.length - 1].comfyui, status.prompt);
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
  $("logout").hidden = !(s.auth && s.auth.token_required);
  renderLogChoices(s);
  renderClock();
}

// Whether a start has run past the time the stack's starts are expected to take.
function slowStart(c) {
  return c.state === "starting" && typeof c.expected_start_s === "number"
    && serverNow() - c.since > c.expected_start_s * 1000;
}

function stateWords(c) {
  switch (c.state) {
    case "stopped": return "Stopped";
    case "starting": return `Starting · ${c.stage || "launching"}` + (slowStart(c) ? " · taking longer than usual" : "");
    case "ready": return "Ready";
    case "stopping": return "Stopping";
    case "backing-off": return `Restarting · attempt ${c.attempt + 1}`;
    case "failed": return `Failed: ${c.reason}`;
    default: return c.state;
  }
}

// The slots of the pod, each with its link; a status from before slots is read as one slot.
function slotsOf(s) {
  const urls = s.slot_urls || [];
  const slots = s.slots && s.slots.length ? s.slots : [{
    slot: 0, port: s.comfyui_port, user: s.user, gpus: s.gpus || [], comfyui: s.services.comfyui,
    import_failed: s.import_failed, prompt: s.prompt,
  }];
  return slots.map((slot, at) => Object.assign({}, slot, {
    url: urls[at] !== undefined ? urls[at] : at === 0 ? s.comfyui_url : null,
  }));
}

function chosenUserOf(s) {
  return page.chosenUser && s.users.includes(page.chosenUser) ? page.chosenUser
    : s.user && s.users.includes(s.user) ? s.user : (s.users[0] || "");
}

// The slot the ComfyUI card describes: the chosen user's own; on a one-slot pod the only one
// (whoever holds it); else the slot picked in the slot list, or nothing yet ("any free slot").
function shownSlot(s) {
  const slots = slotsOf(s);
  const user = chosenUserOf(s);
  const own = slots.find((slot) => slot.user && slot.user === user);
  if (own) return own;
  if (slots.length === 1) return slots[0];
  const picked = slots.find((slot) => String(slot.slot) === page.chosenSlot);
  if (picked) return picked;
  return { slot: null, port: null, user: null, gpus: [], comfyui: { state: "stopped" }, import_failed: [], prompt: null, url: null };
}

function gpuWords(gpus) {
  if (!gpus || !gpus.length) return "CPU";
  return gpus.map((g) => `GPU ${g.index}${g.name ? " (" + g.name.replace(/^NVIDIA (GeForce )?/, "") + ")" : ""}`).join(", ");
}

function renderComfy(s) {
  const shown = shownSlot(s);
  const c = shown.comfyui;
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
    detail = `for ${shown.user}` + (c.last_start_s != null ? ` · started in ${c.last_start_s.toFixed(1)} s` : "");
  } else if (starting) {
    detail = `for ${shown.user} · ${c.percent}%`;
  } else if (c.state === "backing-off") {
    detail = `${c.reason}\n${c.hint}`;
  } else if (c.state === "stopped" && s.users.length === 0) {
    detail = "This pod has no users yet.";
  } else if (shown.slot === null && chosenUserOf(s)) {
    detail = `${chosenUserOf(s)} has no ComfyUI on this pod yet: Launch takes a free slot.`;
  }
  if (slotsOf(s).length > 1 && shown.slot !== null) {
    detail = `Slot ${shown.slot} · ${gpuWords(shown.gpus)}` + (detail ? ` · ${detail}` : "");
  }
  setText("detail", detail);
  // A failure, or a restart after one, shows what to try and the lines that explain it.
  const failed = c.state === "failed" || (c.state === "backing-off" && (c.last_lines || []).length > 0);
  $("failure").hidden = !failed;
  if (failed) {
    setText("failure-hint", c.hint || "look at the log lines below");
    showLines($("failure-lines"), (c.last_lines || []).join("\n") || "(no log lines)");
  }
  const broken = shown.import_failed || [];
  const notes = $("import-failed");
  const key = broken.map((n) => n.node).join("\n");
  if (notes.dataset.key !== key) {
    notes.dataset.key = key;
    notes.replaceChildren(...broken.map((n) => el("li",
      `The custom node ${n.node} failed to import: its nodes are missing from ComfyUI (the ComfyUI log says why).`)));
  }
  renderSlow();
}

function showLines(pre, text) {
  if (pre.textContent !== text) {
    pre.textContent = text;
    pre.scrollTop = pre.scrollHeight; // the error is at the end
  }
}

// A start past its expected time says so, with the last lines ComfyUI printed (the status's
// when it carries them, else the ones this page received).
function renderSlow() {
  const s = page.status;
  const c = s && shownSlot(s).comfyui;
  const slow = Boolean(c) && slowStart(c);
  $("slow").hidden = !slow;
  if (!slow) return;
  const expected = duration(c.expected_start_s * 1000);
  setText("slow-text", `This start is taking longer than usual: ComfyUI usually starts within ${expected}, and it has been ${duration(serverNow() - c.since)}. `
    + "It may still finish (a first start after an update installs and loads custom nodes); if the lines below stopped moving, Stop and Launch again, or look for the error.");
  const own = (c.last_lines || []).length ? c.last_lines
    : page.logs.lines.filter((line) => line.service === "comfyui").slice(-15).map((line) => line.text);
  showLines($("slow-lines"), own.join("\n") || "(ComfyUI printed nothing yet)");
}

// The tab's title says the state, so a tab in the background tells it too.
function renderTitle() {
  const s = page.status;
  if (page.mode === "login") { document.title = "Log in · podstack"; return; }
  if (!s) { document.title = "podstack"; return; }
  const shown = shownSlot(s);
  const c = shown.comfyui;
  let state;
  if (page.noAnswer) state = "No answer";
  else if (c.state === "starting") state = slowStart(c) ? "Starting (slow)" : `Starting ${Math.max(0, Math.min(100, c.percent || 0))}%`;
  else if (c.state === "ready") state = `Ready${shown.user ? " · " + shown.user : ""}`;
  else if (c.state === "backing-off") state = "Restarting";
  else if (c.state === "failed") state = "Failed";
  else if (c.state === "stopping") state = "Stopping";
  else state = "Stopped";
  const title = `${state} · ${s.stack.name} · podstack`;
  if (document.title !== title) document.title = title;
}

// The parts of the status that move with the clock: elapsed times and ages.
function renderClock() {
  const s = page.status;
  if (!s) return;
  const c = shownSlot(s).comfyui;
  let elapsed = "";
  if (c.state === "starting" || c.state === "stopping") elapsed = duration(serverNow() - c.since);
  else if (c.state === "ready") elapsed = `up ${duration(serverNow() - c.since)}`;
  else if (c.state === "backing-off") elapsed = `next try in ${duration(c.until - serverNow())}`;
  else if (c.state === "failed") elapsed = ago(c.since);
  setText("elapsed", elapsed);
  if (c.state === "starting") {
    setText("state-text", stateWords(c));
    renderSlow();
  }
  renderTitle();
}

function selectedUser() { return $("user").value; }

function renderControls(s) {
  const select = $("user");
  const wanted = chosenUserOf(s);
  if ([...select.options].map((o) => o.value).join("\n") !== s.users.join("\n")) {
    select.replaceChildren(...s.users.map((name) => new Option(name, name)));
  }
  if (select.value !== wanted) select.value = wanted;
  setText("outputs-user", wanted ? `of ${wanted}` : "");

  const slots = slotsOf(s);
  renderSlotPicker(s, slots);
  const shown = shownSlot(s);
  const c = shown.comfyui;
  const user = selectedUser();
  const other = Boolean(shown.user) && user !== shown.user;
  const launch = $("launch");
  const launching = page.busy.has("launch");
  launch.classList.toggle("busy", launching);
  launch.setAttribute("aria-busy", String(launching));
  setText("launch", launching ? "Launching…"
    : other && c.state !== "stopped" && c.state !== "failed" ? `Switch to ${user}` : "Launch");
  const settled = c.state === "stopped" || c.state === "failed";
  setUsable(launch, !(launching || !user || page.busy.has("stop") || c.state === "starting"
    || c.state === "stopping" || (!settled && !other)));

  const stopping = page.busy.has("stop");
  const stop = $("stop");
  stop.classList.toggle("busy", stopping);
  stop.setAttribute("aria-busy", String(stopping));
  setText("stop", stopping ? "Stopping…" : "Stop");
  setUsable(stop, !(stopping || launching || c.state === "stopped" || c.state === "stopping"));

  // "Open ComfyUI" is the chosen user's own session only; anyone else's says whose it is.
  const open = $("open");
  const ready = c.state === "ready" && Boolean(shown.url);
  open.hidden = !ready;
  if (shown.url && open.getAttribute("href") !== shown.url) open.href = shown.url;
  setText("open", openWords(shown, user));
  open.classList.toggle("open", !shown.user || shown.user === user);
  const unpublished = $("unpublished");
  unpublished.hidden = shown.published !== false;
  if (!unpublished.hidden) setText("unpublished", unpublishedWords(shown));
  renderSlots(s, slots, user);

  $("add-user").hidden = !s.allow_new_users;
}

// Launch and Stop are never `disabled`: a disabled button drops the keyboard focus (to the
// page's start) the moment it is pressed; aria-disabled keeps it where it was and says the
// button does nothing now.
function openWords(slot, user) {
  return slot.user && slot.user !== user ? `${slot.user}'s ComfyUI` : "Open ComfyUI";
}

// A slot whose port the pod's RunPod template does not publish has no link; the Notes say
// how to publish it.
function unpublishedWords(slot) {
  return `Slot ${slot.slot}'s ComfyUI cannot be opened: RunPod's proxy does not serve its port ${slot.port} (see Notes)`;
}

// On a pod of several slots the user picks one, or lets the pod choose a free one.
function renderSlotPicker(s, slots) {
  const picker = $("slot-picker");
  picker.hidden = slots.length < 2;
  const select = $("slot");
  const options = [["", "any free slot"]].concat(slots.map((slot) =>
    [String(slot.slot), `Slot ${slot.slot} · ${gpuWords(slot.gpus)} · ${slot.user || "free"}${slot.published === false ? " · cannot be opened" : ""}`]));
  const key = options.map((o) => o.join("=")).join("\n");
  if (select.dataset.key !== key) {
    select.dataset.key = key;
    select.replaceChildren(...options.map(([value, text]) => new Option(text, value)));
  }
  const wanted = options.some(([value]) => value === page.chosenSlot) ? page.chosenSlot : "";
  if (select.value !== wanted) select.value = wanted;
}

// The VRAM in use on a GPU, from the newest host sample.
function vramOf(index) {
  const samples = page.host.samples;
  const latest = samples.length ? samples[samples.length - 1] : null;
  const gpu = latest && (latest.gpus || []).find((g) => g.index === index);
  if (!gpu || typeof gpu.memory_used_mib !== "number") return null;
  const gib = (mib) => `${(mib / 1024).toFixed(1)} GiB`;
  return `${gib(gpu.memory_used_mib)}${gpu.memory_total_mib ? " of " + gib(gpu.memory_total_mib) : ""}`;
}

// Every slot as a card (several slots only: a one-slot pod's card is the one above).
function renderSlots(s, slots, user) {
  const box = $("slots");
  box.hidden = slots.length < 2;
  if (box.hidden) return;
  const cards = slots.map((slot) => {
    const card = el("li", undefined, "slot");
    card.dataset.slot = String(slot.slot);
    card.dataset.state = slot.comfyui.state;
    if (slot.user && slot.user === user) card.classList.add("own");
    const head = el("div", undefined, "slot-head");
    head.append(el("strong", `Slot ${slot.slot}`), el("span", slot.user || "free", slot.user ? "slot-user" : "slot-user muted"));
    card.append(head);
    const state = el("span", slot.user || slot.comfyui.state !== "stopped" ? stateWords(slot.comfyui) : "Free", "state");
    state.dataset.state = slot.comfyui.state;
    card.append(state);
    const facts = [gpuWords(slot.gpus)];
    // nvidia-smi measures a GPU, not a process: on a shared GPU the figure is every sharer's.
    const shared = (slot.gpus_shared_by || []).length > 1
      ? `, shared by slots ${slot.gpus_shared_by.join(", ")}` : "";
    for (const gpu of slot.gpus || []) {
      const vram = vramOf(gpu.index);
      if (vram) facts.push(`VRAM ${vram}${slot.gpus.length > 1 || shared ? " on GPU " + gpu.index : ""}${shared}`);
    }
    const queue = slot.comfyui.state === "ready" && slot.queue;
    if (queue) facts.push(`queue ${queue.queue_running} running · ${queue.queue_pending} waiting`);
    if (slot.prompt && slot.prompt.steps) facts.push(`prompt step ${slot.prompt.step} of ${slot.prompt.steps}`);
    card.append(el("p", facts.join(" · "), "slot-facts muted"));
    if (slot.published === false) card.append(el("p", unpublishedWords(slot), "slot-facts bad"));
    if (slot.comfyui.state === "ready" && slot.url) {
      const a = el("a", openWords(slot, user), slot.user === user ? "button open" : "button");
      a.href = slot.url;
      a.target = "_blank";
      a.rel = "noopener";
      card.append(a);
    }
    return card;
  });
  const key = cards.map((c) => c.outerHTML).join("");
  if (box.dataset.key !== key) {
    box.dataset.key = key;
    box.replaceChildren(...cards);
  }
}

function setUsable(button, usable) {
  const value = String(!usable);
  if (button.getAttribute("aria-disabled") !== value) button.setAttribute("aria-disabled", value);
}
function usable(button) { return button.getAttribute("aria-disabled") !== "true"; }

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

function whenReady(url) {
  chime();
  if (flag(SETTINGS.autoOpen) && url) {
    const tab = window.open(url, "_blank");
    if (tab) tab.opener = null;
    else note("The browser blocked opening ComfyUI in a new tab: allow pop-ups for this page, or use Open ComfyUI.");
  }
}

// ---------------------------------------------------------------- actions

// Taking someone's slot (or stopping their session) is a 409 naming them and their queue:
// the page asks, naming them, and only then sends it again with `force`.
function takeOverQuestion(refused, asker, stopping) {
  const queue = refused.queue;
  const work = queue && typeof queue === "object"
    ? `${queue.queue_running || 0} prompt(s) running and ${queue.queue_pending || 0} waiting`
    : "a queue that could not be read";
  const what = stopping ? `Stop ${refused.user}'s ComfyUI?` : `Stop ${refused.user}'s ComfyUI and start ${asker}'s in its place?`;
  return `Slot ${refused.slot} runs ${refused.user}'s ComfyUI, with ${work}. ${what} `
    + `Whatever ${refused.user} has running or queued there is lost.`;
}

async function act(key, what, method, path, body) {
  page.busy.add(key);
  note("");
  render();
  try {
    let status;
    try {
      status = await api(method, path, body);
    } catch (failure) {
      const refused = failure.status === 409 && failure.body;
      if (!refused || typeof refused.user !== "string" || !body || body.force) throw failure;
      if (!window.confirm(takeOverQuestion(refused, body.user, path === "api/stop"))) {
        clearError(key);
        note(`Nothing changed: ${refused.user}'s ComfyUI keeps running.`);
        return false;
      }
      status = await api(method, path, Object.assign({}, body, { slot: refused.slot, force: true }));
    }
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
  if (!usable($("launch"))) return;
  prepareAudio();
  const user = selectedUser();
  page.chosenUser = user;
  writeSetting(SETTINGS.user, user);
  const body = { user };
  if (page.chosenSlot) body.slot = Number(page.chosenSlot);
  act("launch", `Launching ComfyUI for ${user}`, "POST", "api/start", body);
}

function stop() {
  if (!usable($("stop"))) return;
  const shown = page.status && shownSlot(page.status);
  const body = { user: selectedUser() };
  if (shown && shown.slot !== null) body.slot = shown.slot;
  act("stop", "Stopping ComfyUI", "POST", "api/stop", body.user ? body : undefined);
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
      readFailed(name, `Reading ${name}`, failure);
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
    // GPU hours move while a session runs: the running one is counted up to each answer.
    due.usage = now + 15000;
    loadUsage();
  }
  if (page.optional.host !== "absent" && now >= due.host) {
    // Each status carries the newest sample once the supervisor samples; the history then
    // only fills gaps (after a reconnect every section is read again at once).
    due.host = now + (page.status.host ? 60000 : 5000);
    loadHost();
  }
  if (now >= due.outputs) {
    due.outputs = now + 15000;
    loadOutputs();
  }
}

// GET /api/sync: {folders: [...]}, {users: [{user, folders}]} or a list; see the book's API reference.
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
    const row = document.createElement("tr");
    const [stateText, tone] = syncState(f);
    const cells = [el("td", user), el("td", folder + (f.mode ? ` (${f.mode})` : "")),
      el("td", stateText, tone),
      el("td", typeof last === "number" ? ago(last) : last || "never"),
      el("td", String(pick(f, "pending", "pending_files") ?? "")),
      el("td", typeof lag === "number" ? duration(lag * 1000) : ""),
      el("td", syncSpeed(f))];
    // The column's name, shown before each value where the rows are stacked (a phone).
    cells.forEach((cell, i) => { cell.dataset.label = SYNC_COLUMNS[i]; });
    row.append(...cells);
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
    cell.colSpan = 7;
    row.append(cell);
    rows.push(row);
  }
  $("sync-rows").replaceChildren(...rows);
  $("sync-problems").replaceChildren(...problems);
}

const SYNC_COLUMNS = ["User", "Folder", "State", "Last upload", "Pending", "Lag", "Speed"];

// A folder's state in words, and its tone.
function syncState(f) {
  switch (f.state) {
    case "idle": return ["up to date", "ok"];
    case "syncing": return ["syncing", "warn"];
    case "pending": return ["changes waiting", "warn"];
    case "held-elsewhere": return [`synced by ${f.held_by || "another pod"}`, "muted"];
    case "refused": return ["refused (empty source)", "bad"];
    case "failing": return ["failing, retried", "bad"];
    default: return [f.state || "", ""];
  }
}

// The speed of the pass under way, else the last pass's average, else a dash.
function syncSpeed(f) {
  const speed = pick(f, "speed_bps", "bytes_per_second", "speed");
  if (typeof speed === "number" && speed > 0) return `${bytes(speed)}/s`;
  const pass = f.last_pass;
  if (pass && pass.bytes > 0 && pass.seconds > 0) return `${bytes(pass.bytes / pass.seconds)}/s (last pass)`;
  return f.state === "syncing" ? "0 B/s" : "—";
}

// GET /api/models: {folder, models: [{dest, url, size, state, bytes, total, bytes_per_s, reason, hint}]}.
function drawModels(data) {
  const models = Array.isArray(data) ? data : (data && data.models) || [];
  $("models").hidden = models.length === 0;
  let missing = 0;
  let downloading = false;
  // A row that did not change stays the same element, so its Copy button (and its "Copied")
  // outlives the refreshes a download next to it causes.
  const drawn = new Map([...$("model-rows").children].map((row) => [row.dataset.key, row]));
  const rows = models.map((m) => {
    const state = pick(m, "state") || "unknown";
    const size = pick(m, "size", "total", "bytes_total", "total_bytes");
    const done = pick(m, "bytes", "done", "bytes_done");
    if (state === "missing" || state === "failed") missing += 1;
    if (state === "downloading") downloading = true;
    const key = JSON.stringify(m);
    if (drawn.has(key)) return drawn.get(key);
    const row = document.createElement("tr");
    row.dataset.key = key;
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
    } else if (state === "downloading") {
      // No size in the manifest and none from the server: what came so far, and a moving bar.
      const speed = pick(m, "bytes_per_s", "speed_bps");
      stateCell.textContent = `downloading · ${bytes(typeof done === "number" ? done : 0)} so far`
        + (typeof speed === "number" && speed > 0 ? ` · ${bytes(speed)}/s` : "");
      const bar = el("div", undefined, "progress indeterminate");
      bar.setAttribute("role", "progressbar");
      bar.setAttribute("aria-label", `${pick(m, "name", "dest")} download`);
      bar.setAttribute("aria-valuetext", `${bytes(typeof done === "number" ? done : 0)} so far, size unknown`);
      bar.append(el("div", undefined, "fill"));
      stateCell.append(bar);
    } else if (state === "checking" && typeof m.total === "number" && m.total > 0) {
      stateCell.textContent = `checking ${Math.min(100, Math.round((m.bytes / m.total) * 100))}%`;
    } else if (state === "waiting" && m.pod) {
      stateCell.textContent = `waiting for ${m.pod}`;
    }
    const reason = pick(m, "error", "reason");
    if (reason) {
      // A reason holds a URL and two hashes: it wraps anywhere, and a button copies it whole.
      const text = `${reason}${m.hint ? " — " + m.hint : ""}`;
      const box = el("div", undefined, "reason");
      box.append(el("span", text));
      box.append(copyButton(text, `Copy why ${pick(m, "name", "dest")} failed`));
      stateCell.append(box);
    }
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
      const who = el("td", u.user);
      if (u.running) who.append(el("small", " · running now", "ok"));
      row.append(who, el("td", u.gpu_hours.toFixed(2), "num"), el("td", String(u.sessions), "num"));
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
    readFailed("usage", "Reading the GPU hours", failure);
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
    readFailed("outputs", `Listing the outputs of ${user}`, failure);
  }
}

// ---------------------------------------------------------------- the machine (last hour)

// GET /api/metrics/history: the supervisor's samples of the last hour (GPU, CPU, RAM, volume,
// ComfyUI's queue); each status may carry the newest one as `host`. A 404 hides the card.
async function loadHost() {
  const samples = page.host.samples;
  const since = samples.length ? samples[samples.length - 1].at_ms : 0;
  try {
    const answer = await api("GET", `api/metrics/history${since ? "?since=" + since : ""}`);
    page.optional.host = "present";
    clearError("host");
    if (answer && answer.interval_s) page.host.interval_s = answer.interval_s;
    addHostSamples((answer && answer.samples) || []);
  } catch (failure) {
    if (failure.status === 404) {
      page.optional.host = "absent";
      $("host").hidden = !page.host.samples.length;
    } else {
      readFailed("host", "Reading the machine's figures", failure);
    }
  }
}

function addHostSamples(list) {
  const samples = page.host.samples;
  let added = false;
  for (const sample of list) {
    if (!sample || typeof sample.at_ms !== "number") continue;
    // The history usually arrives after a status already brought the newest sample: older
    // samples go in before it, in time order, each once.
    let at = samples.length;
    while (at > 0 && samples[at - 1].at_ms > sample.at_ms) at--;
    if (at > 0 && samples[at - 1].at_ms === sample.at_ms) continue;
    samples.splice(at, 0, sample);
    added = true;
  }
  const from = serverNow() - HOUR_MS;
  while (samples.length && samples[0].at_ms < from) samples.shift();
  if (added) renderHost();
}

const SVG = "http://www.w3.org/2000/svg";
const CHART = { width: 240, height: 48 };

// A small chart of `values` (figures or null, one per sample) over the last hour, 0..max; a
// gap where a figure is missing. Inline SVG, no library.
function chart(title, now, values, max, summary) {
  const figure = el("figure", undefined, "chart");
  const caption = el("figcaption");
  caption.append(el("span", title), el("strong", now));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${CHART.width} ${CHART.height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${title} over the last hour: ${summary}`);
  const end = serverNow();
  const x = (at) => Math.max(0, Math.min(CHART.width, ((at - (end - HOUR_MS)) / HOUR_MS) * CHART.width));
  const y = (v) => CHART.height - 1 - (Math.max(0, Math.min(max, v)) / max) * (CHART.height - 2);
  let run = [];
  const runs = [run];
  page.host.samples.forEach((sample, i) => {
    const v = values[i];
    if (typeof v !== "number" || !isFinite(v) || !(max > 0)) {
      if (run.length) { run = []; runs.push(run); }
      return;
    }
    run.push([x(sample.at_ms), y(v)]);
  });
  for (const points of runs.filter((r) => r.length)) {
    if (points.length === 1) points.push([points[0][0] + 1, points[0][1]]);
    const area = document.createElementNS(SVG, "polygon");
    area.setAttribute("class", "area");
    area.setAttribute("points", [[points[0][0], CHART.height], ...points, [points[points.length - 1][0], CHART.height]]
      .map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" "));
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("class", "line");
    line.setAttribute("points", points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" "));
    svg.append(area, line);
  }
  figure.append(caption, svg);
  return figure;
}

function peak(values) {
  const numbers = values.filter((v) => typeof v === "number" && isFinite(v));
  return numbers.length ? Math.max(...numbers) : null;
}

function renderHost() {
  const samples = page.host.samples;
  const card = $("host");
  card.hidden = samples.length === 0;
  if (!samples.length) return;
  const latest = samples[samples.length - 1];
  const figures = [];
  const gpus = latest.gpus || [];
  for (const gpu of gpus) {
    const of = (name) => samples.map((sample) => {
      const match = (sample.gpus || []).find((g) => g.index === gpu.index);
      return match ? match[name] : null;
    });
    const label = gpus.length > 1 ? `GPU ${gpu.index} ` : "GPU ";
    const util = of("utilization_pct");
    figures.push(chart(`${label}utilisation`, percentText(gpu.utilization_pct), util, 100,
      `now ${percentText(gpu.utilization_pct)}, highest ${percentText(peak(util))}`));
    const used = of("memory_used_mib");
    const total = gpu.memory_total_mib || peak(used) || 0;
    const gib = (mib) => (typeof mib === "number" ? `${(mib / 1024).toFixed(1)} GiB` : "unknown");
    figures.push(chart(`${label}memory (VRAM)`, `${gib(gpu.memory_used_mib)} of ${gib(total)}`, used, total,
      `now ${gib(gpu.memory_used_mib)} of ${gib(total)}, highest ${gib(peak(used))}`));
    const temp = of("temperature_c");
    const celsius = (t) => (typeof t === "number" ? `${Math.round(t)} °C` : "unknown");
    figures.push(chart(`${label}temperature`, celsius(gpu.temperature_c), temp, Math.max(100, peak(temp) || 0),
      `now ${celsius(gpu.temperature_c)}, highest ${celsius(peak(temp))}`));
    const power = of("power_w");
    const watts = (w) => (typeof w === "number" ? `${Math.round(w)} W` : "unknown");
    const limit = gpu.power_limit_w || peak(power) || 0;
    figures.push(chart(`${label}power`, `${watts(gpu.power_w)}${gpu.power_limit_w ? " of " + watts(gpu.power_limit_w) : ""}`, power, limit,
      `now ${watts(gpu.power_w)}, highest ${watts(peak(power))}`));
  }
  const cpu = samples.map((sample) => sample.cpu_pct);
  figures.push(chart(`CPU${latest.cpus ? " (" + latest.cpus + " cores)" : ""}`, percentText(latest.cpu_pct), cpu, 100,
    `now ${percentText(latest.cpu_pct)}, highest ${percentText(peak(cpu))}`));
  const ram = samples.map((sample) => sample.ram_used_bytes);
  const ramTotal = latest.ram_total_bytes || peak(ram) || 0;
  figures.push(chart("RAM", `${bytesOr(latest.ram_used_bytes)} of ${bytesOr(ramTotal)}`, ram, ramTotal,
    `now ${bytesOr(latest.ram_used_bytes)} of ${bytesOr(ramTotal)}, highest ${bytesOr(peak(ram))}`));
  $("charts").replaceChildren(...figures);
  renderVolume(latest.volume);
  renderQueue(latest.comfyui, page.status && page.status.prompt);
}

function percentText(v) { return typeof v === "number" ? `${Math.round(v)}%` : "unknown"; }
function bytesOr(n) { return typeof n === "number" ? bytes(n) : "unknown"; }

// The volume's used and free space; a warning before it fills (the server's `low`: under 10%
// or 5 GiB free).
function renderVolume(volume) {
  const box = $("volume");
  const warning = $("volume-warning");
  if (!volume || typeof volume.total_bytes !== "number" || volume.total_bytes <= 0) {
    box.replaceChildren(el("p", "The volume's size is unknown (is it mounted?).", "muted"));
    warning.hidden = true;
    return;
  }
  const usedPercent = Math.round((volume.used_bytes / volume.total_bytes) * 100);
  const freePercent = Math.round((volume.free_bytes / volume.total_bytes) * 100);
  const low = typeof volume.low === "boolean" ? volume.low
    : volume.free_bytes < 0.1 * volume.total_bytes || volume.free_bytes < 5 * 1024 ** 3;
  const title = el("div", undefined, "volume-title");
  title.append(el("span", `Volume ${volume.path || ""}`), el("strong", `${bytes(volume.free_bytes)} free of ${bytes(volume.total_bytes)}`));
  const bar = el("div", undefined, "progress" + (low ? " low" : ""));
  bar.setAttribute("role", "meter");
  bar.setAttribute("aria-label", "Volume used");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  bar.setAttribute("aria-valuenow", String(usedPercent));
  bar.setAttribute("aria-valuetext", `${usedPercent}% used, ${bytes(volume.free_bytes)} free`);
  const fill = el("div", undefined, "fill");
  fill.style.width = `${usedPercent}%`;
  bar.append(fill);
  box.replaceChildren(title, bar, el("small", `${bytes(volume.used_bytes)} used (${usedPercent}%)`, "muted"));
  const text = low ? `The volume is almost full: ${bytes(volume.free_bytes)} free (${freePercent}%). `
    + "New outputs, model downloads and ComfyUI itself fail once it is full: delete old outputs or grow the volume." : "";
  if (warning.textContent !== text) warning.textContent = text;
  warning.hidden = !low;
}

// ComfyUI's queue (from the host samples) and the running prompt's sampler progress (the
// status's `prompt`, read from ComfyUI's log as it runs).
function renderQueue(comfy, progress) {
  const box = $("queue");
  if (!comfy) {
    box.replaceChildren(el("p", "ComfyUI's queue shows while ComfyUI is ready.", "muted"));
    return;
  }
  const running = comfy.queue_running || 0;
  const pending = comfy.queue_pending || 0;
  const parts = [el("p", `Queue: ${running} running · ${pending} waiting`, "queue-text")];
  if (progress && typeof progress.steps === "number" && progress.steps > 0) {
    const percent = Math.max(0, Math.min(100, Math.round(typeof progress.percent === "number" ? progress.percent : (progress.step / progress.steps) * 100)));
    const bar = el("div", undefined, "progress");
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-label", "The running prompt");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    bar.setAttribute("aria-valuenow", String(percent));
    bar.setAttribute("aria-valuetext", `step ${progress.step} of ${progress.steps}`);
    const fill = el("div", undefined, "fill");
    fill.style.width = `${percent}%`;
    bar.append(fill);
    parts.push(el("p", `Running prompt: step ${progress.step} of ${progress.steps} (${percent}%)`, "queue-progress"), bar);
  }
  box.replaceChildren(...parts);
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
    readFailed("logs", "Reading the logs", failure);
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

function clock(ms) {
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

function lineText(line, all, times) {
  return (times && line.time_ms ? `${clock(line.time_ms)} ` : "") + (all ? `${line.service.padEnd(10)} ` : "") + line.text;
}

function shownLines() {
  const all = !$("log-service").value;
  const times = $("log-times").checked;
  return page.logs.lines.filter(visible).map((line) => lineText(line, all, times));
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

// The shown lines, errors and warnings marked; redrawn only when what is shown changed.
function renderLogs() {
  const logs = page.logs;
  logs.dirty = false;
  const pre = $("log");
  const service = $("log-service");
  const all = !service.value;
  const times = $("log-times").checked;
  const shown = logs.lines.filter(visible);
  const last = shown.length ? shown[shown.length - 1].cursor : 0;
  const key = [shown.length, last, shown.length ? shown[0].cursor : 0, service.value, $("log-filter").value, times].join("|");
  if (key !== logs.key) {
    logs.key = key;
    if (!shown.length) {
      pre.textContent = $("log-filter").value.trim() ? "(no line matches the filter)"
        : `(no ${service.value ? service.selectedOptions[0].textContent + " " : ""}lines yet)`;
    } else {
      const out = document.createDocumentFragment();
      let plain = "";
      shown.forEach((line, i) => {
        const text = (i ? "\n" : "") + lineText(line, all, times);
        const tone = ERROR_LINE.test(line.text) ? "log-error" : WARNING_LINE.test(line.text) ? "log-warning" : "";
        if (!tone) { plain += text; return; }
        if (plain) { out.append(plain); plain = ""; }
        if (i) out.append("\n");
        out.append(el("span", text.slice(i ? 1 : 0), tone));
      });
      if (plain) out.append(plain);
      pre.replaceChildren(out);
    }
  }
  if ($("log-follow").checked) {
    logs.scrolling = true;
    pre.scrollTop = pre.scrollHeight;
  }
  renderSlow();
}

// Follow follows the end only while the reader is there: scrolling up to read turns it off
// (so new lines never pull the view back down), scrolling back to the end turns it on.
function logScrolled() {
  const logs = page.logs;
  const pre = $("log");
  const atEnd = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 8;
  if (logs.scrolling) {
    logs.scrolling = false;
    if (atEnd) return;
  }
  const follow = $("log-follow");
  if (follow.checked !== atEnd) follow.checked = atEnd;
}

// The services the log picker offers: those this pod runs, and the one chosen.
function renderLogChoices(s) {
  const select = $("log-service");
  for (const option of select.options) {
    const slot = s.services[option.value];
    const off = Boolean(slot) && (slot.state === "disabled" || slot.state === "not-configured");
    if (option.hidden !== off && option.value !== select.value) option.hidden = off;
  }
}

function renderLogDownload() {
  const source = $("log-service").value;
  const link = $("log-download");
  link.hidden = !source;
  if (source) {
    link.href = `api/logs/download?source=${encodeURIComponent(source)}`;
    link.setAttribute("aria-label", `Download the whole ${$("log-service").selectedOptions[0].textContent} log`);
  }
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
  const copied = await copyText(lines.join("\n"));
  setText("log-note", copied ? `Copied ${lines.length} line(s).` : "The browser did not allow copying; select the lines and copy them by hand.");
}

// A Copy button beside a long text (a failure's reason, crash lines).
function copyButton(text, label) {
  const button = el("button", "Copy", "copy");
  button.type = "button";
  button.dataset.copyText = text;
  button.setAttribute("aria-label", label);
  return button;
}

async function copyClicked(event) {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const from = button.dataset.copyFrom;
  const text = from ? $(from).textContent : button.dataset.copyText || "";
  const copied = await copyText(text);
  button.textContent = copied ? "Copied" : "Copy refused: select and copy by hand";
}

async function copyText(text) {
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
  return copied;
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
  $("slot").addEventListener("change", () => {
    page.chosenSlot = $("slot").value;
    render();
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
  $("log-service").addEventListener("change", () => { renderLogDownload(); scheduleLogRender(); });
  $("log-filter").addEventListener("input", scheduleLogRender);
  $("log-follow").addEventListener("change", scheduleLogRender);
  $("log").addEventListener("scroll", logScrolled, { passive: true });
  for (const [id, key, initial] of [["log-times", SETTINGS.logTimes, true], ["log-wrap", SETTINGS.logWrap, false]]) {
    const box = $(id);
    const stored = readSetting(key);
    box.checked = stored === null ? initial : stored === "1";
    box.addEventListener("change", () => {
      writeSetting(key, box.checked === initial ? null : box.checked ? "1" : "0");
      $("log").classList.toggle("wrap", $("log-wrap").checked);
      scheduleLogRender();
    });
  }
  $("log").classList.toggle("wrap", $("log-wrap").checked);
  renderLogDownload();
  $("logout").addEventListener("click", logout);
  document.addEventListener("click", copyClicked);
  $("log-pause").addEventListener("click", togglePause);
  $("log-copy").addEventListener("click", copyLogs);
}

wire();
begin();
tick();

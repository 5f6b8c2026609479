// The playground: a file mode (upload or URL, streamed deltas, a transcript you can read, hear and check)
// and a live mode (microphone over the realtime WebSocket). Plain modules, no build step, no network but
// this server.
import { buildTurns, formatSrt, formatTxt, formatVtt, clock, wordAt } from "/playground/transcript.js";

const $ = (id) => document.getElementById(id);
const API = "/v1";
const KEY_STORE = "serve_app.api_key";
// Formats the API streams (stream=true); text, srt and vtt come as one body.
const STREAMED = new Set(["json", "verbose_json", "diarized_json"]);
const UNSURE = 0.5; // a word's probability below which it is marked
// Live lines: turns of up to 15 s (Together's max_speech_duration_s) read better and decode more
// accurately than its 5 s default; previews show the words meanwhile.
const LIVE_QUERY = "input_audio_format=pcm_s16le_16000&max_speech_duration_s=15";

// ---- key, errors ----

function apiKey() {
  return $("api-key").value.trim();
}

function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

// The API's error envelope in words; anything else (a proxy's page, a dropped connection) by its status.
function errorMessage(status, body) {
  try {
    const parsed = typeof body === "string" ? JSON.parse(body) : body;
    if (parsed && parsed.error && parsed.error.message) {
      const param = parsed.error.param ? ` (${parsed.error.param})` : "";
      return `${parsed.error.message}${param} [${status}]`;
    }
  } catch (_) { /* not JSON */ }
  if (status === 0) return "The server could not be reached.";
  return `The server answered ${status}${body ? `: ${String(body).slice(0, 200)}` : ""}`;
}

// ---- models and languages ----

async function loadModels() {
  let response;
  try {
    response = await fetch(`${API}/models`, { headers: authHeaders() });
  } catch (_) {
    showError("The server could not be reached.");
    return;
  }
  const text = await response.text();
  if (!response.ok) {
    showError(errorMessage(response.status, text));
    return;
  }
  clearError();
  const ids = JSON.parse(text).data.map((m) => m.id);
  for (const select of [$("model"), $("live-model")]) {
    const keep = select.value;
    select.replaceChildren(...ids.map((id) => new Option(id, id)));
    if (ids.includes(keep)) select.value = keep;
  }
}

async function loadLanguages() {
  const response = await fetch("/playground/languages.json");
  if (!response.ok) return;
  const languages = await response.json();
  const names = Object.entries(languages).sort((a, b) => a[1].localeCompare(b[1]));
  for (const select of [$("language"), $("live-language")]) {
    for (const [code, name] of names) select.add(new Option(`${name} (${code})`, code));
  }
}

// ---- tabs ----

function setupTabs() {
  const tabs = [$("tab-file"), $("tab-live")];
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
    tab.focus();
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (e) => {
      if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
        select(tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length]);
      }
    });
  });
}

// ---- file mode ----

let chosenFile = null;
let current = null; // { turns, raw, format }
let downloadUrls = [];

function setupDrop() {
  const drop = $("drop");
  $("file").addEventListener("change", () => {
    chosenFile = $("file").files[0] || null;
  });
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) {
      chosenFile = e.dataTransfer.files[0];
      $("file").files = e.dataTransfer.files;
    }
  });
}

function formData() {
  const form = new FormData();
  const url = $("url").value.trim();
  if (chosenFile) form.append("file", chosenFile, chosenFile.name);
  else if (url) form.append("file", url);
  else return null;
  const format = $("format").value;
  form.append("model", $("model").value);
  if ($("language").value) form.append("language", $("language").value);
  form.append("response_format", format);
  if ($("words").checked && format === "verbose_json") {
    form.append("timestamp_granularities[]", "word");
    form.append("timestamp_granularities[]", "segment");
  }
  if ($("diarize").checked) {
    form.append("diarize", "true");
    if ($("min-speakers").value) form.append("min_speakers", $("min-speakers").value);
    if ($("max-speakers").value) form.append("max_speakers", $("max-speakers").value);
  }
  if (STREAMED.has(format)) form.append("stream", "true");
  return form;
}

// Server-sent events read as they arrive (XMLHttpRequest: it also reports upload progress).
function transcribe(form, streamed, onEvent) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    let seen = 0;
    xhr.open("POST", `${API}/audio/transcriptions`);
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) setProgress("Uploading", (100 * e.loaded) / e.total);
    };
    xhr.upload.onload = () => setProgress("Transcribing", null);
    const drain = () => {
      if (!streamed || xhr.status !== 200) return;
      const text = xhr.responseText;
      let end;
      while ((end = text.indexOf("\n\n", seen)) !== -1) {
        const block = text.slice(seen, end);
        seen = end + 2;
        for (const line of block.split("\n")) {
          if (line.startsWith("data: ")) onEvent(JSON.parse(line.slice(6)));
        }
      }
    };
    xhr.onprogress = drain;
    xhr.onload = () => {
      drain();
      resolve({ status: xhr.status, body: xhr.responseText });
    };
    xhr.onerror = () => resolve({ status: 0, body: "" });
    xhr.send(form);
  });
}

function setProgress(label, percent) {
  $("progress-box").hidden = false;
  $("progress-label").textContent = label;
  const bar = $("progress");
  if (percent === null) bar.removeAttribute("value");
  else bar.value = percent;
}

async function onSubmit(e) {
  e.preventDefault();
  clearError();
  const form = formData();
  if (!form) {
    showError("Choose or drop an audio file, or enter its URL.");
    return;
  }
  const format = $("format").value;
  const streamed = STREAMED.has(format);
  $("transcribe").disabled = true;
  resetResult();
  $("result").hidden = false;
  const player = $("player");
  player.src = chosenFile ? URL.createObjectURL(chosenFile) : $("url").value.trim();
  let final = null;
  let streamError = null;
  const live = $("streaming");
  const segments = [];
  const { status, body } = await transcribe(form, streamed, (event) => {
    if (event.type === "transcript.text.delta") live.textContent += event.delta;
    else if (event.type === "transcript.text.segment") segments.push(event);
    else if (event.type === "transcript.text.done") final = event;
    else if (event.type === "error") streamError = event.error;
  });
  $("transcribe").disabled = false;
  $("progress-box").hidden = true;
  if (status !== 200) {
    showError(errorMessage(status, body));
    $("result").hidden = true;
    return;
  }
  if (streamError) {
    showError(errorMessage(200, { error: streamError }));
    return;
  }
  live.textContent = "";
  let data;
  if (!streamed) data = { text: body };
  else if (format === "diarized_json") data = { ...final, segments };
  else data = final;
  if (!data) {
    showError("The stream ended before the transcript was done.");
    return;
  }
  showTranscript(data, format, streamed ? null : body);
}

function resetResult() {
  $("streaming").textContent = "";
  $("transcript").replaceChildren();
  $("speaker-names").replaceChildren();
  $("speakers").hidden = true;
  $("raw").hidden = true;
  $("downloads").hidden = true;
  for (const url of downloadUrls) URL.revokeObjectURL(url);
  downloadUrls = [];
  current = null;
}

const names = new Map(); // speaker id -> the name shown

function speakerName(id) {
  return names.get(id) || id;
}

function showTranscript(data, format, rawText) {
  if (rawText !== null) {
    // text, srt, vtt: shown as the server wrote them (no times per word to play from)
    $("raw").textContent = rawText;
    $("raw").hidden = false;
    return;
  }
  const turns = buildTurns(data);
  current = { turns, data, words: turns.flatMap((t) => t.words) };
  const speakers = [...new Set(turns.map((t) => t.speaker).filter((s) => s))];
  const colour = new Map(speakers.map((s, i) => [s, `s${i % 8}`]));
  names.clear();
  if (speakers.length) {
    $("speakers").hidden = false;
    $("speaker-names").replaceChildren(...speakers.map((s) => speakerField(s, colour.get(s))));
  }
  const container = $("transcript");
  for (const turn of turns) container.append(turnElement(turn, colour));
  $("downloads").hidden = turns.length === 0;
  refreshDownloads();
}

function speakerField(id, cls) {
  const field = document.createElement("div");
  field.className = "field";
  const swatch = document.createElement("span");
  swatch.className = `swatch ${cls}`;
  const label = document.createElement("label");
  label.htmlFor = `name-${id}`;
  label.textContent = `Name for ${id}`;
  const input = document.createElement("input");
  input.type = "text";
  input.id = `name-${id}`;
  input.value = id;
  input.addEventListener("input", () => {
    names.set(id, input.value.trim() || id);
    for (const el of document.querySelectorAll(`.speaker[data-speaker="${CSS.escape(id)}"]`)) {
      el.textContent = speakerName(id);
    }
    refreshDownloads();
  });
  field.append(swatch, label, input);
  return field;
}

function turnElement(turn, colour) {
  const el = document.createElement("div");
  el.className = turn.speaker ? `turn ${colour.get(turn.speaker)}` : "turn";
  const head = document.createElement("div");
  head.className = "turn-head";
  if (turn.speaker) {
    const who = document.createElement("span");
    who.className = `speaker ${colour.get(turn.speaker)}`;
    who.dataset.speaker = turn.speaker;
    who.textContent = speakerName(turn.speaker);
    head.append(who);
  }
  if (turn.start !== null) {
    const time = document.createElement("button");
    time.type = "button";
    time.className = "time";
    time.textContent = `${clock(turn.start)} – ${clock(turn.end)}`;
    time.setAttribute("aria-label", `Play from ${clock(turn.start)}`);
    time.addEventListener("click", () => seek(turn.start));
    head.append(time);
  }
  const text = document.createElement("p");
  text.className = "text";
  if (turn.words.length) {
    turn.words.forEach((w, i) => {
      const span = document.createElement("span");
      span.className = "word";
      span.textContent = w.word;
      if (typeof w.probability === "number") {
        // words the model was unsure of are underlined, to check by ear
        span.title = `${Math.round(w.probability * 100)}% sure`;
        if (w.probability < UNSURE) span.classList.add("unsure");
      }
      span.dataset.index = String(w.index);
      span.dataset.start = String(w.start);
      span.setAttribute("role", "button");
      span.tabIndex = -1; // one tab stop per turn (its time button); arrows move between its words
      span.addEventListener("click", () => seek(w.start));
      span.addEventListener("keydown", (e) => wordKeys(e, span));
      text.append(span);
      if (i < turn.words.length - 1) text.append(" ");
    });
  } else {
    text.textContent = turn.text;
  }
  el.append(head, text);
  return el;
}

function wordKeys(e, span) {
  const move = { ArrowRight: "nextElementSibling", ArrowLeft: "previousElementSibling" }[e.key];
  if (move && span[move]) {
    e.preventDefault();
    span[move].focus();
  } else if (e.key === "Enter" || e.key === " ") {
    e.preventDefault();
    span.click();
  }
}

function seek(seconds) {
  const player = $("player");
  player.currentTime = seconds;
  player.play().catch(() => { /* autoplay may be refused; the position is set */ });
  highlight();
}

let highlighted = null;

function highlight() {
  if (!current) return;
  const index = wordAt(current.words, $("player").currentTime);
  const el = index === null ? null : document.querySelector(`.word[data-index="${index}"]`);
  if (el === highlighted) return;
  if (highlighted) highlighted.classList.remove("current");
  if (el) el.classList.add("current");
  highlighted = el;
}

function followPlayback() {
  const player = $("player");
  const tick = () => {
    highlight();
    if (!player.paused) requestAnimationFrame(tick);
  };
  player.addEventListener("play", () => requestAnimationFrame(tick));
  player.addEventListener("seeked", highlight);
  player.addEventListener("timeupdate", highlight);
}

function refreshDownloads() {
  if (!current) return;
  for (const url of downloadUrls) URL.revokeObjectURL(url);
  downloadUrls = [];
  const turns = current.turns.map((t) => ({ ...t, speaker: t.speaker ? speakerName(t.speaker) : null }));
  const files = {
    "dl-txt": ["text/plain", formatTxt(turns, current.data.text)],
    "dl-srt": ["application/x-subrip", formatSrt(turns)],
    "dl-vtt": ["text/vtt", formatVtt(turns)],
    "dl-json": ["application/json", JSON.stringify(current.data, null, 2)],
  };
  const timed = turns.some((t) => t.start !== null);
  for (const [id, [type, content]] of Object.entries(files)) {
    const link = $(id);
    const url = URL.createObjectURL(new Blob([content], { type }));
    downloadUrls.push(url);
    link.href = url;
    link.hidden = (id === "dl-srt" || id === "dl-vtt") && !timed;
  }
}

// ---- live mode ----

let live = null; // { ws, context, stream, node, items }

function liveStatus(text) {
  $("live-status").textContent = text;
}

function liveLine(itemId) {
  let li = document.querySelector(`#live-lines li[data-item="${CSS.escape(itemId)}"]`);
  if (!li) {
    li = document.createElement("li");
    li.dataset.item = itemId;
    li.className = "partial";
    $("live-lines").append(li);
  }
  return li;
}

function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

async function startLive() {
  clearError();
  const key = apiKey();
  const model = encodeURIComponent($("live-model").value);
  const language = $("live-language").value ? `&language=${encodeURIComponent($("live-language").value)}` : "";
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // Browsers cannot set headers on a WebSocket: the key travels as OpenAI's subprotocol, never in the URL.
  const protocols = key ? ["realtime", `openai-insecure-api-key.${key}`] : ["realtime"];
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
  } catch (err) {
    showError(`The microphone is not available: ${err.message}`);
    return;
  }
  const ws = new WebSocket(`${scheme}://${location.host}${API}/realtime?model=${model}${language}&${LIVE_QUERY}`,
    protocols);
  const session = { ws, stream, context: null, node: null, open: new Set(), stopping: false, failed: false,
    audioStopped: false };
  live = session;
  $("live-toggle").textContent = "Stop";
  $("live-toggle").setAttribute("aria-pressed", "true");
  liveStatus("Connecting…");
  ws.onmessage = (message) => onLiveEvent(session, JSON.parse(message.data));
  ws.onclose = (e) => {
    if (!session.failed && e.code !== 1000 && e.code !== 1005 && !session.stopping) {
      showError(e.reason ? `The live session ended: ${e.reason} [${e.code}]` : `The live session ended (${e.code}).`);
    }
    stopAudio(session);
    if (live === session) resetLive();
  };
}

async function startAudio(session) {
  // A 16 kHz context lets the browser's own resampler (a proper low-pass) bring the microphone to the rate
  // the server wants; the worklet then only converts to PCM16. Browsers that refuse a context at another
  // rate than the microphone's get the default one, and the worklet's box filter does the resampling.
  let context;
  try {
    context = new AudioContext({ sampleRate: 16000 });
    context.createMediaStreamSource(session.stream).disconnect();
  } catch (_) {
    if (context) context.close().catch(() => {});
    context = new AudioContext();
  }
  session.context = context;
  await context.audioWorklet.addModule("/playground/pcm-worklet.js");
  await context.resume(); // a context made after awaits may start suspended
  const source = context.createMediaStreamSource(session.stream);
  const node = new AudioWorkletNode(context, "pcm16");
  node.port.onmessage = (e) => {
    if (session.ws.readyState === WebSocket.OPEN && !session.stopping) {
      session.ws.send(JSON.stringify({ type: "input_audio_buffer.append", audio: toBase64(e.data) }));
    }
  };
  source.connect(node);
  node.connect(context.destination); // pulled by the graph; it writes no output, so this plays silence
  session.node = node;
  liveStatus("Listening…");
}

function onLiveEvent(session, event) {
  switch (event.type) {
    case "session.created":
      startAudio(session).catch((err) => showError(`Audio capture failed: ${err.message}`));
      break;
    case "input_audio_buffer.speech_started":
      session.open.add(event.item_id);
      liveLine(event.item_id);
      break;
    case "conversation.item.input_audio_transcription.delta": {
      const li = liveLine(event.item_id);
      li.textContent += event.delta;
      break;
    }
    case "conversation.item.input_audio_transcription.completed": {
      const li = liveLine(event.item_id);
      li.textContent = event.transcript;
      li.className = "completed";
      if (!event.transcript) li.remove();
      session.open.delete(event.item_id);
      break;
    }
    case "conversation.item.input_audio_transcription.failed": {
      const li = liveLine(event.item_id);
      li.textContent = errorMessage(200, { error: event.error });
      li.className = "failed";
      session.open.delete(event.item_id);
      break;
    }
    case "error":
      // Stopping commits whatever is open; with nothing open the server says so, which is no news.
      if (session.stopping && event.error && event.error.code === "input_audio_buffer_commit_empty") break;
      session.failed = true;
      showError(errorMessage(event.error && event.error.type === "invalid_request_error" ? 400 : 500,
        { error: event.error }));
      break;
    default:
      break;
  }
  if (session.stopping && session.open.size === 0) session.ws.close(1000);
}

function stopAudio(session) {
  if (session.audioStopped) return;
  session.audioStopped = true;
  for (const track of session.stream.getTracks()) track.stop();
  if (session.node) session.node.disconnect();
  if (session.context) session.context.close().catch(() => {});
}

function stopLive() {
  const session = live;
  if (!session) return;
  session.stopping = true;
  stopAudio(session);
  liveStatus("Finishing the last line…");
  if (session.ws.readyState === WebSocket.OPEN) {
    session.ws.send(JSON.stringify({ type: "input_audio_buffer.commit" }));
    // the commit's answer closes it (onLiveEvent); a server that stays silent is left after 15 s
    setTimeout(() => session.ws.close(1000), 15000);
  } else {
    session.ws.close();
  }
}

function resetLive() {
  live = null;
  $("live-toggle").textContent = "Start microphone";
  $("live-toggle").setAttribute("aria-pressed", "false");
  liveStatus("Not listening.");
}

// ---- start ----

function init() {
  const keyInput = $("api-key");
  keyInput.value = sessionStorage.getItem(KEY_STORE) || "";
  keyInput.addEventListener("change", () => {
    sessionStorage.setItem(KEY_STORE, apiKey());
    loadModels();
  });
  setupTabs();
  setupDrop();
  followPlayback();
  $("file-form").addEventListener("submit", onSubmit);
  $("live-toggle").addEventListener("click", () => (live ? stopLive() : startLive()));
  loadLanguages();
  loadModels();
}

init();

// audioguard's page: vanilla JS, no third-party code. Every name that comes from configuration
// (sources, groups, labels) is written with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const METER_MIN_DBFS = -90;
let config = null;
let live = { sources: [] };
const cards = new Map();

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function getJson(url, options) {
  const response = await fetch(url, Object.assign({ credentials: "same-origin" }, options || {}));
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || body.message || `${response.status} ${response.statusText}`);
  return body;
}

// --- views -----------------------------------------------------------------------------------

function show(view) {
  for (const button of document.querySelectorAll("nav button")) {
    button.classList.toggle("active", button.dataset.view === view);
  }
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = section.id !== `view-${view}`;
  }
  if (view === "timeline") loadTimeline();
  if (view === "tune") fillTuneChoices();
}

// --- sources (live) --------------------------------------------------------------------------

function meterWidth(dbfs) {
  if (dbfs === null || dbfs === undefined) return 0;
  return Math.max(0, Math.min(100, ((dbfs - METER_MIN_DBFS) / -METER_MIN_DBFS) * 100));
}

function card(name) {
  let parts = cards.get(name);
  if (parts) return parts;
  const root = el("div", "card");
  root.dataset.source = name;
  const title = el("h3");
  const label = el("span", "name", name);
  const state = el("span", "badge state");
  title.append(label, state);
  const levelRow = el("div", "row");
  const levelText = el("span", "level");
  levelRow.append(el("span", null, "level (meter -90 to 0 dBFS)"), levelText);
  const meter = el("div", "meter level-meter");
  const fill = el("div", "fill");
  meter.append(fill);
  const labels = el("ul", "labels");
  const groups = el("div", "groups");
  const open = el("div", "open");
  root.append(title, levelRow, meter, labels, groups, open);
  $("sources").append(root);
  parts = { root, state, levelText, fill, labels, groups, open, groupRows: new Map() };
  cards.set(name, parts);
  return parts;
}

function groupRow(parts, group) {
  let row = parts.groupRows.get(group);
  if (row) return row;
  const root = el("div", "group");
  root.dataset.group = group;
  const head = el("div", "row");
  const name = el("span", null, group);
  const value = el("span", "score");
  head.append(name, value);
  const meter = el("div", "meter");
  const fill = el("div", "fill");
  const mark = el("div", "mark");
  meter.append(fill, mark);
  root.append(head, meter);
  parts.groups.append(root);
  row = { value, fill, mark, meter };
  parts.groupRows.set(group, row);
  return row;
}

function render(status) {
  live = status;
  $("no-sources").hidden = status.sources.length > 0;
  for (const source of status.sources) {
    const parts = card(source.name);
    parts.state.textContent = source.state;
    parts.state.className = `badge state state-${source.state}`;
    const level = source.level_dbfs;
    parts.levelText.textContent = level === null ? "no audio yet" : `${level.toFixed(1)} dBFS`;
    parts.fill.style.width = `${meterWidth(level)}%`;
    const window = source.window;
    parts.labels.replaceChildren();
    if (window && window.top) {
      for (const item of window.top.slice(0, 3)) {
        parts.labels.append(el("li", null, `${item.label} ${item.score.toFixed(2)}`));
      }
    }
    for (const [group, threshold] of Object.entries(source.thresholds)) {
      const row = groupRow(parts, group);
      const score = window && window.scores ? window.scores[group] : undefined;
      row.value.textContent =
        score === undefined ? `– / threshold ${threshold.toFixed(2)}` : `${score.toFixed(2)} / threshold ${threshold.toFixed(2)}`;
      row.fill.style.width = `${score === undefined ? 0 : score * 100}%`;
      row.mark.style.left = `${threshold * 100}%`;
      row.meter.classList.toggle("hot", score !== undefined && score >= threshold);
    }
    parts.open.textContent = source.open_events.length ? `open event: ${source.open_events.join(", ")}` : "";
  }
}

function connect() {
  const stream = new EventSource("/ui/api/stream");
  stream.addEventListener("status", (message) => {
    $("connection").textContent = "live";
    render(JSON.parse(message.data));
  });
  stream.onerror = () => {
    $("connection").textContent = "reconnecting…";
  };
}

// --- timeline --------------------------------------------------------------------------------

function localTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "open";
}

let timeline = [];

async function loadTimeline() {
  try {
    timeline = (await getJson("/ui/api/events?hours=24")).events;
  } catch (error) {
    $("no-events").hidden = false;
    $("no-events").textContent = error.message;
    return;
  }
  for (const [select, field] of [[$("timeline-source"), "source"], [$("timeline-group"), "group"]]) {
    const chosen = select.value;
    const names = [...new Set(timeline.map((event) => event[field]))].sort();
    select.replaceChildren(new Option(`every ${field}`, ""), ...names.map((name) => new Option(name, name)));
    if (names.includes(chosen)) select.value = chosen;
  }
  drawTimeline();
}

function drawTimeline() {
  const body = $("events").tBodies[0];
  const source = $("timeline-source").value, group = $("timeline-group").value;
  const shown = timeline.filter((e) => (!source || e.source === source) && (!group || e.group === group));
  body.replaceChildren();
  $("no-events").hidden = shown.length > 0;
  $("no-events").textContent = "No event in the last 24 hours.";
  for (const event of shown) {
    const row = el("tr");
    row.dataset.eventId = event.event_id;
    for (const text of [localTime(event.started_at), event.change === "end" ? localTime(event.ended_at) : "open",
      event.source, event.group, event.peak_score.toFixed(2), event.threshold.toFixed(2)]) {
      row.append(el("td", null, text));
    }
    row.addEventListener("click", () => openRecord(event.event_id));
    body.append(row);
  }
}

async function openRecord(eventId) {
  const record = await getJson(`/ui/api/events/${encodeURIComponent(eventId)}`);
  const fields = $("record-fields");
  fields.replaceChildren();
  const classes = record.triggered_by.map((c) => `${c.label} ${c.score.toFixed(2)}`).join(", ");
  const delivery = record.delivery.length
    ? record.delivery.map((d) => `${d.sink}: ${d.state}`).join("\n") : "no sink configured";
  const privacy = record.privacy_method + (Object.keys(record.privacy_params || {}).length
    ? ` ${JSON.stringify(record.privacy_params)}` : "");
  for (const [name, value] of [
    ["event", record.event_id], ["source", record.source], ["group", `${record.label} [${record.group}]`],
    ["start", localTime(record.started_at)], ["end", record.change === "end" ? localTime(record.ended_at) : "open"],
    ["peak score", `${record.peak_score.toFixed(2)} (threshold ${record.threshold.toFixed(2)})`],
    ["classes", classes || "–"], ["privacy applied", privacy], ["delivery", delivery],
    ["incident", record.incident_id || "none"], ["end reason", record.reason || "–"],
  ]) {
    fields.append(el("dt", null, name), el("dd", null, value));
  }
  $("record").hidden = false;
}

// --- tune a threshold ------------------------------------------------------------------------

function fillTuneChoices() {
  const sourceSelect = $("tune-source");
  const chosen = sourceSelect.value;
  sourceSelect.replaceChildren();
  for (const source of live.sources) sourceSelect.append(new Option(source.name, source.name));
  if (chosen) sourceSelect.value = chosen;
  fillGroups();
}

function fillGroups() {
  const source = live.sources.find((s) => s.name === $("tune-source").value);
  const groupSelect = $("tune-group");
  const chosen = groupSelect.value;
  groupSelect.replaceChildren();
  if (!source) return;
  for (const group of Object.keys(source.thresholds)) groupSelect.append(new Option(group, group));
  if (chosen && source.thresholds[chosen] !== undefined) groupSelect.value = chosen;
  if (!$("tune-threshold").value) $("tune-threshold").value = source.thresholds[groupSelect.value];
  drawHistory();
}

async function drawHistory() {
  const source = $("tune-source").value;
  const group = $("tune-group").value;
  if (!source || !group) return;
  const query = `source=${encodeURIComponent(source)}&group=${encodeURIComponent(group)}&minutes=60`;
  const history = await getJson(`/ui/api/history?${query}`);
  const candidate = parseFloat($("tune-threshold").value);
  plotHistory($("history"), history, Number.isFinite(candidate) ? candidate : null);
}

function axes(ctx, canvas, left, bottom, yLabel, xLabel) {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "13px system-ui, sans-serif";
  ctx.fillStyle = "#111";
  ctx.strokeStyle = "#9ca3af";
  ctx.beginPath();
  ctx.moveTo(left, 10);
  ctx.lineTo(left, canvas.height - bottom);
  ctx.lineTo(canvas.width - 10, canvas.height - bottom);
  ctx.stroke();
  ctx.save();
  ctx.translate(14, (canvas.height - bottom) / 2 + 40);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(yLabel, 0, 0);
  ctx.restore();
  ctx.fillText(xLabel, canvas.width / 2 - 60, canvas.height - 6);
}

function plotHistory(canvas, history, candidate) {
  const ctx = canvas.getContext("2d");
  const left = 60, bottom = 40, top = 30;
  const width = canvas.width - left - 20, height = canvas.height - bottom - top;
  axes(ctx, canvas, left, bottom, "score (0–1)", "minutes ago");
  const now = Date.now() / 1000;
  // the axis spans the stored hour, at least 5 minutes: a young store is still readable
  const oldest = history.points.length ? history.points[0][0] : now - 300;
  const seconds = Math.min(3600, Math.max(300, now - oldest));
  const x = (at) => left + width * (1 - (now - at) / seconds);
  const y = (score) => top + height * (1 - score);
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) ctx.fillText(tick.toFixed(2), 22, y(tick) + 4);
  for (let part = 0; part <= 4; part++) {
    const ago = (seconds / 60) * (1 - part / 4);
    ctx.fillText(ago >= 10 ? ago.toFixed(0) : ago.toFixed(1), x(now - ago * 60) - 8, canvas.height - bottom + 16);
  }
  ctx.strokeStyle = "#2563eb";
  ctx.fillStyle = "#2563eb";
  ctx.beginPath();
  let drawing = false;
  for (const [at, score] of history.points) {
    if (score === null) { drawing = false; continue; }  // a window the loudness gate held back
    if (drawing) ctx.lineTo(x(at), y(score)); else ctx.moveTo(x(at), y(score));
    drawing = true;
  }
  ctx.stroke();
  for (const [at, score] of history.points) {
    if (score !== null) ctx.fillRect(x(at) - 1.5, y(score) - 1.5, 3, 3);
  }
  const line = (value, colour, dash, text) => {
    ctx.strokeStyle = colour;
    ctx.fillStyle = colour;
    ctx.setLineDash(dash);
    ctx.beginPath();
    ctx.moveTo(left, y(value));
    ctx.lineTo(left + width, y(value));
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.textAlign = "right";
    ctx.fillText(text, left + width - 4, y(value) - 5);
    ctx.textAlign = "left";
  };
  line(history.threshold, "#111", [], `current threshold ${history.threshold.toFixed(2)}`);
  if (candidate !== null && candidate !== history.threshold) {
    line(candidate, "#dc2626", [6, 4], `candidate ${candidate.toFixed(2)}`);
  }
  ctx.fillStyle = "#111";
  ctx.font = "bold 14px system-ui, sans-serif";
  ctx.fillText(`${history.source} · ${history.group}: score of each window (${history.points.length} stored)`, left, 18);
}

async function countEvents(submit) {
  submit.preventDefault();
  const source = $("tune-source").value, group = $("tune-group").value;
  const threshold = $("tune-threshold").value;
  const query = `source=${encodeURIComponent(source)}&group=${encodeURIComponent(group)}&threshold=${encodeURIComponent(threshold)}&minutes=60`;
  try {
    const result = await getJson(`/ui/api/tune?${query}`);
    let text = `At threshold ${result.threshold}: ${result.events} event(s) in the last hour (${result.windows} windows)`;
    if (result.published_after_cooldown !== result.events) text += `, ${result.published_after_cooldown} published on MQTT after its cooldown`;
    $("tune-result").textContent = text;
    $("tune-result").dataset.events = String(result.events);
    $("tune-snippet").textContent = `# sources file:\n${result.snippet}`;
  } catch (error) {
    $("tune-result").textContent = error.message;
  }
  drawHistory();
}

// --- try a recording (the v2 call audioguard client makes) -----------------------------------

function v2Body(audio, parameters) {
  const header = new TextEncoder().encode(JSON.stringify({
    inputs: [{ name: "audio", shape: [1], datatype: "BYTES", parameters: { binary_data_size: audio.byteLength + 4 } }],
    parameters,
  }));
  const body = new Uint8Array(header.length + 4 + audio.byteLength);
  body.set(header, 0);
  new DataView(body.buffer).setUint32(header.length, audio.byteLength, true);
  body.set(new Uint8Array(audio), header.length + 4);
  return { body, headerLength: header.length };
}

const span = (start, end) => `${start.toFixed(2)}-${end.toFixed(2)} s`;

function anomalyLine(a) {  // audioguard/render.py's anomaly_line
  const triggers = a.triggered_by || [];
  let named = triggers.slice(0, 3).map((t) => `${t.label} ${t.score.toFixed(2)}`).join(", ");
  if (triggers.length > 3) named += ` (+${triggers.length - 3} more)`;
  const measured = Object.entries(a.measures || {}).map(([k, v]) => `${k} ${v}`).join(", ");
  const detail = [named, measured].filter((part) => part).join("; ");
  return `${a.label} [${a.group}] ${a.peak_score.toFixed(2)} (threshold ${a.threshold.toFixed(2)}) ${span(a.start_seconds, a.end_seconds)}: ${detail}`;
}

async function tryRecording(submit) {
  submit.preventDefault();
  const file = $("try-file").files[0];
  if (!file) { $("try-status").textContent = "choose a recording first"; return; }
  const parameters = {};
  if ($("try-privacy").value) parameters.privacy = $("try-privacy").value;
  const { body, headerLength } = v2Body(await file.arrayBuffer(), parameters);
  $("try-status").textContent = "analysing…";
  let answer;
  try {
    answer = await getJson(`/v2/models/${encodeURIComponent(config.model_name)}/infer`, {
      method: "POST", body,
      headers: { "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": String(headerLength) },
    });
  } catch (error) {
    $("try-status").textContent = error.message;
    return;
  }
  const outputs = Object.fromEntries(answer.outputs.map((o) => [o.name, o.data]));
  const anomalies = JSON.parse(outputs.anomalies[0]);
  const p = answer.parameters || {};
  $("try-status").textContent = `${file.name}: ${Number(p.duration_seconds).toFixed(2)} s, privacy ${p.privacy_method}`;
  $("try-anomalies").textContent = anomalies.length
    ? `${anomalies.length} anomal${anomalies.length === 1 ? "y" : "ies"}:\n${anomalies.map(anomalyLine).join("\n")}`
    : "no anomaly";
  plotRecording($("try-timeline"), outputs, anomalies, Number(p.duration_seconds));
}

function plotRecording(canvas, outputs, anomalies, duration) {
  const lane = 18;
  canvas.height = 230 + lane * anomalies.length;  // one lane per anomaly line
  const ctx = canvas.getContext("2d");
  const left = 60, bottom = 40, top = 10;
  const lanes = lane * anomalies.length + (anomalies.length ? 8 : 0);
  const width = canvas.width - left - 20, height = canvas.height - bottom - top - lanes;
  axes(ctx, canvas, left, bottom, "top score", "seconds into the recording");
  const x = (s) => left + width * (s / Math.max(duration, 0.001));
  const y = (v) => top + lanes + height * (1 - v);
  for (const tick of [0, 0.5, 1]) ctx.fillText(tick.toFixed(1), 28, y(tick) + 4);
  const step = Math.max(1, Math.ceil(duration / 10));
  for (let s = 0; s <= duration; s += step) ctx.fillText(`${s}`, x(s) - 4, canvas.height - bottom + 16);
  const starts = outputs.window_start_seconds, ends = outputs.window_end_seconds;
  const count = starts.length, topK = outputs.label.length / count;
  for (let w = 0; w < count; w++) {  // each window: its best label and score
    const score = outputs.probability[w * topK];
    ctx.fillStyle = "rgba(37, 99, 235, .3)";
    ctx.fillRect(x(starts[w]), y(score), Math.max(1, x(ends[w]) - x(starts[w]) - 1), y(0) - y(score));
    ctx.fillStyle = "#111";
    ctx.fillText(`${outputs.label[w * topK]} ${score.toFixed(2)}`, x(starts[w]) + 4, y(score) + 16);
  }
  anomalies.forEach((a, i) => {  // each anomaly: where it was heard, its peak against its threshold
    const row = top + i * lane;
    ctx.fillStyle = "rgba(220, 38, 38, .25)";
    ctx.fillRect(x(a.start_seconds), row, Math.max(2, x(a.end_seconds) - x(a.start_seconds)), lane - 3);
    ctx.fillStyle = "#7f1d1d";
    ctx.fillText(`${a.label} [${a.group}] ${a.peak_score.toFixed(2)} (threshold ${a.threshold.toFixed(2)})`,
      x(a.start_seconds) + 4, row + lane - 6);
  });
}

// --- start -------------------------------------------------------------------------------------

async function start() {
  for (const button of document.querySelectorAll("nav button")) {
    button.addEventListener("click", () => show(button.dataset.view));
  }
  $("tune-source").addEventListener("change", fillGroups);
  $("tune-group").addEventListener("change", () => {
    const source = live.sources.find((s) => s.name === $("tune-source").value);
    $("tune-threshold").value = source ? source.thresholds[$("tune-group").value] : "";
    drawHistory();
  });
  $("tune-threshold").addEventListener("input", drawHistory);
  $("tune-form").addEventListener("submit", countEvents);
  $("try-form").addEventListener("submit", tryRecording);
  $("timeline-source").addEventListener("change", drawTimeline);
  $("timeline-group").addEventListener("change", drawTimeline);
  config = await getJson("/ui/api/config");
  for (const method of config.privacy_methods) $("try-privacy").append(new Option(method, method));
  if (config.live) connect();
  else { $("no-sources").hidden = false; $("connection").textContent = "no live source"; }
}

start();

// audioguard's page, tuning a threshold. Vanilla JS, no third-party code; every name that comes from
// configuration (sources, groups, labels) is written with textContent, never as HTML.
"use strict";

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

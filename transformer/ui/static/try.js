// audioguard's page, trying a recording (the v2 call audioguard client makes). Vanilla JS, no third-party code; every name that comes from
// configuration (sources, groups, labels) is written with textContent, never as HTML.
"use strict";

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

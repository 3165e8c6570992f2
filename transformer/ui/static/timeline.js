// audioguard's page, the timeline. Vanilla JS, no third-party code; every name that comes from
// configuration (sources, groups, labels) is written with textContent, never as HTML.
"use strict";

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

// incidents are kept by the MQTT sink (several sources hearing one sound within a few seconds)
function incidentOf(record) {
  const tagged = record.delivery.find((d) => d.incident_id);
  if (tagged) return tagged.incident_id;
  return record.delivery.some((d) => d.sink === "mqtt") ? "none (a recording, incidents off, or an event of an earlier run)"
    : "none (incidents come with the MQTT sink)";
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
    ["incident", incidentOf(record)], ["end reason", record.reason || "–"],
  ]) {
    fields.append(el("dt", null, name), el("dd", null, value));
  }
  $("record").hidden = false;
}

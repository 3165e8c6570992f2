// audioguard's page, the live sources. Vanilla JS, no third-party code; every name that comes from
// configuration (sources, groups, labels) is written with textContent, never as HTML.
"use strict";

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

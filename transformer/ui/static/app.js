// audioguard's page, its views, then the start (loaded last). Vanilla JS, no third-party code; every name that comes from
// configuration (sources, groups, labels) is written with textContent, never as HTML.
"use strict";

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

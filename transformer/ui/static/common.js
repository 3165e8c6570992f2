// audioguard's page, the helpers every view uses. Vanilla JS, no third-party code; every name that comes from
// configuration (sources, groups, labels) is written with textContent, never as HTML.
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

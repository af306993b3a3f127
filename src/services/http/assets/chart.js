// keel dashboard: a small time-series line chart on a <canvas> (no libraries).
// A chart keeps the last `capacity` samples of each series; draw() repaints it to the canvas's
// CSS size. The canvas carries data-points (samples held), data-last (latest values) and
// data-peak (largest value held) so tests and scripts can see the chart move.
"use strict";

window.keel = window.keel || {};

keel.formatNumber = function (value, unit) {
  if (!isFinite(value)) return "-";
  const abs = Math.abs(value);
  const steps = unit === "B" ? [[1 << 30, " Gi"], [1 << 20, " Mi"], [1 << 10, " Ki"]]
                             : [[1e9, " G"], [1e6, " M"], [1e3, " k"]];
  for (const [size, prefix] of steps)
    if (abs >= size) return trim((value / size).toFixed(abs / size >= 100 ? 0 : 1)) + prefix + (unit || "");
  const digits = Number.isInteger(value) ? 0 : (abs >= 10 ? 0 : 1);
  return trim(value.toFixed(digits)) + (unit ? " " + unit : "");
};

const trim = (text) => text.replace(/\.0$/, "");

keel.TimeChart = class {
  // series: [{name, color}], unit: "" or "B" (bytes), capacity: samples kept (1 per second).
  constructor(canvas, series, unit, capacity) {
    this.canvas = canvas;
    this.series = series;
    this.unit = unit;
    this.capacity = capacity;
    this.times = [];
    this.values = series.map(() => []);
  }

  push(time_s, values) {
    this.times.push(time_s);
    values.forEach((v, i) => this.values[i].push(isFinite(v) ? v : 0));
    if (this.times.length > this.capacity) {
      this.times.shift();
      this.values.forEach((list) => list.shift());
    }
    this.canvas.dataset.points = String(this.times.length);
    this.canvas.dataset.last = values.map((v) => String(v)).join(",");
    this.canvas.dataset.peak = String(Math.max(0, ...this.values.map((list) => Math.max(0, ...list))));
  }

  latest(i) {
    const list = this.values[i];
    return list.length ? list[list.length - 1] : NaN;
  }

  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const style = getComputedStyle(canvas);
    const ink = style.getPropertyValue("--chart-ink").trim() || "#888";
    const grid = style.getPropertyValue("--chart-grid").trim() || "#ddd";
    const left = 58, right = 8, top = 8, bottom = 18;
    const plotW = width - left - right, plotH = height - top - bottom;

    let max = 0;
    for (const list of this.values) for (const v of list) if (v > max) max = v;
    const [ceiling, divisions] = niceCeiling(max, this.unit === "B" ? 1024 : 1000);
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = ink;
    ctx.strokeStyle = grid;
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let k = 0; k <= divisions; ++k) {
      const y = Math.round(top + plotH - (plotH * k) / divisions) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + plotW, y);
      ctx.stroke();
      ctx.fillText(keel.formatNumber((ceiling * k) / divisions, this.unit), left - 6, y);
    }
    const span = this.capacity;  // seconds shown, newest at the right edge
    ctx.textAlign = "center";
    ctx.textBaseline = "alphabetic";
    for (let m = 0; m <= span / 60; ++m) {
      const x = left + plotW - (plotW * m * 60) / span;
      ctx.fillText(m === 0 ? "now" : "-" + m + " min", Math.min(Math.max(x, left + 14), left + plotW - 12), height - 4);
    }
    if (!this.times.length) return;
    const newest = this.times[this.times.length - 1];
    const xOf = (t) => left + plotW - (plotW * (newest - t)) / span;
    const yOf = (v) => top + plotH - (plotH * v) / ceiling;
    this.series.forEach((s, i) => {
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 1.6;
      ctx.beginPath();
      this.values[i].forEach((v, k) => {
        const x = xOf(this.times[k]), y = yOf(v);
        if (k === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      });
      ctx.stroke();
    });
  }
};

// The axis top: the smallest 1, 2 or 5 times a power of ten at or above value, in the unit's
// scale (k, M, ... of base 1000 or 1024), and how many grid steps divide it evenly.
function niceCeiling(value, base) {
  if (!(value > 0)) return [1, 4];
  let scale = 1;
  while (value / scale >= base) scale *= base;
  const scaled = value / scale;
  const power = Math.pow(10, Math.floor(Math.log10(scaled)));
  for (const [step, divisions] of [[1, 5], [2, 4], [5, 5], [10, 5]])
    if (step * power >= scaled) return [step * power * scale, power < 1 && step === 1 ? 4 : divisions];
  return [10 * power * scale, 5];
}

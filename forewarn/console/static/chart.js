// The case and device chart: one field's value (left axis) with its anomaly score as a band
// (right axis, 0-1), the threshold, and vertical marks for onset and case events.
// Data comes from the page itself (<script id="chart-data">), rendered by the server.
(function () {
  "use strict";
  var holder = document.getElementById("chart");
  var source = document.getElementById("chart-data");
  if (!holder || !source || typeof uPlot === "undefined") return;
  var data = JSON.parse(source.textContent);
  if (!data.t.length) {
    holder.innerHTML = '<p class="muted">No telemetry stored for this time range.</p>';
    holder.setAttribute("data-empty", "true");
    return;
  }
  // the chart spans [start, stop) whatever the data: one bucket, or marks after the last
  // sample (an acknowledgement made now), still give the requested range. Empty rows at both
  // ends do it (and zooming out again returns to them).
  var lastMark = Math.max.apply(null, data.marks.map(function (m) { return m.t; }).concat([0]));
  var lo = Math.min(data.start, data.t[0]);
  var hi = Math.max(data.stop, lastMark + (data.stop - data.start) * 0.01);
  var empty = data.fields.map(function () { return null; });
  if (lo < data.t[0]) {
    data.t.unshift(lo); data.values.unshift(empty); data.scores.unshift(empty);
  }
  if (hi > data.t[data.t.length - 1]) {
    data.t.push(hi); data.values.push(empty); data.scores.push(empty);
  }

  // Every time on the page is UTC in ISO order, whatever the browser's time zone
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function isoDay(d) { return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()); }
  function isoClock(d) { return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()); }
  function isoTime(ts) { var d = new Date(ts * 1000); return isoDay(d) + " " + isoClock(d); }
  function axisTimes(u, splits) {
    // the date goes under the first tick of each new day (under the first tick when the
    // range has no midnight), so two dates never crowd each other
    var days = splits.map(function (ts) { return ts === null || ts === undefined ? null : isoDay(new Date(ts * 1000)); });
    var first = days.findIndex(function (d, i) { return i > 0 && d !== days[i - 1]; });
    return splits.map(function (ts, i) {
      if (ts === null || ts === undefined) return "";
      var label = isoClock(new Date(ts * 1000));
      var dated = i === 0 ? (first < 0 || first >= 2) : days[i] !== days[i - 1];
      return dated ? label + "\n" + days[i] : label;
    });
  }
  function withUnit(field) {
    var unit = (data.units || {})[field];
    return unit ? field + " (" + unit + ")" : field;
  }
  var marksList = document.getElementById("chart-marks");
  if (marksList) {
    data.marks.forEach(function (m) {
      var li = document.createElement("li");
      li.className = "mark-" + m.kind.replace(/\s+/g, "-");
      var when = document.createElement("time");
      when.textContent = isoTime(m.t) + " UTC";
      li.appendChild(document.createTextNode(m.label + " "));
      li.appendChild(when);
      marksList.appendChild(li);
    });
  }

  var markColour = {onset: "#b45309", opened: "#1d4ed8", acknowledged: "#047857",
                    resolved: "#4b5563", escalated: "#b91c1c", reopened: "#7c3aed"};
  var chart = null;

  function chartHeight() { return holder.clientWidth < 600 ? 240 : 320; }

  function column(matrix, j) {
    return matrix.map(function (row) { return row[j]; });
  }

  function marksPlugin() {
    return {
      hooks: {
        draw: [function (u) {
          var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
          ctx.save();
          ctx.font = (11 * devicePixelRatio) + "px system-ui, sans-serif";
          ctx.textBaseline = "top";
          data.marks.forEach(function (m, i) {
            if (m.t < u.scales.x.min || m.t > u.scales.x.max) return;
            var x = Math.round(u.valToPos(m.t, "x", true));
            ctx.strokeStyle = markColour[m.kind] || "#374151";
            ctx.fillStyle = ctx.strokeStyle;
            ctx.lineWidth = 2 * devicePixelRatio;
            ctx.setLineDash(m.kind === "onset" ? [6 * devicePixelRatio, 4 * devicePixelRatio] : []);
            ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
            ctx.fillText(m.label, x + 4 * devicePixelRatio, top + 4 * devicePixelRatio + (i % 3) * 14 * devicePixelRatio);
          });
          ctx.restore();
        }]
      }
    };
  }

  function draw(field) {
    var j = data.fields.indexOf(field);
    var values = column(data.values, j);
    var scores = column(data.scores, j);
    var hot = scores.map(function (s) { return s !== null && s >= data.threshold ? s : null; });
    var threshold = data.t.map(function () { return data.threshold; });
    var opts = {
      width: holder.clientWidth || 900,
      height: chartHeight(),
      plugins: [marksPlugin()],
      cursor: {drag: {x: true, y: false}},
      // splits on UTC hours and days (uPlot's default is the browser's zone)
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      scales: {x: {time: true}, score: {range: [0, 1]}},
      axes: [
        {stroke: "#4b5563", grid: {stroke: "#eef0f3"}, values: axisTimes, size: 50, space: 70},
        {label: withUnit(field), stroke: "#1f2937", grid: {stroke: "#eef0f3"}, size: 60},
        {scale: "score", side: 1, label: "anomaly score", stroke: "#9a3412", grid: {show: false}, size: 50}
      ],
      series: [
        {label: "time (UTC)", value: function (u, ts) { return ts === null ? "–" : isoTime(ts); }},
        {label: withUnit(field), stroke: "#1d4ed8", width: 1.5, spanGaps: false},
        {label: "score", scale: "score", stroke: "rgba(234,88,12,0.55)", fill: "rgba(251,146,60,0.18)", width: 1},
        {label: "anomalous", scale: "score", stroke: "#dc2626", fill: "rgba(220,38,38,0.35)", width: 1.5},
        {label: "threshold", scale: "score", stroke: "#9ca3af", dash: [4, 4], width: 1, points: {show: false}}
      ]
    };
    if (chart) chart.destroy();
    holder.innerHTML = "";
    chart = new uPlot(opts, [data.t, values, scores, hot, threshold], holder);
    holder._uplot = chart;  // for the browser test and the curious
    holder.setAttribute("data-field", field);
    holder.setAttribute("data-ready", "true");
    var buttons = document.querySelectorAll("#field-picker button");
    buttons.forEach(function (b) { b.classList.toggle("on", b.textContent === field); });
  }

  var picker = document.getElementById("field-picker");
  if (picker) {
    data.fields.forEach(function (f) {
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = f;
      if (data.focus.indexOf(f) >= 0) b.classList.add("focus");
      b.addEventListener("click", function () { draw(f); });
      picker.appendChild(b);
    });
  }
  draw(data.focus[0] || data.fields[0]);
  window.addEventListener("resize", function () {
    if (chart) chart.setSize({width: holder.clientWidth, height: chartHeight()});
  });
})();

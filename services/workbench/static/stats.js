// Draws the 统计 page's charts from the figures the server put in #chart-data; the tables
// under each chart hold the same numbers for those who cannot see the chart.
(function () {
  "use strict";
  function draw() {
    var data = JSON.parse(document.getElementById("chart-data").textContent);
    var figures = data.figures; // [[name, 中文], ...]
    document.querySelectorAll(".chart").forEach(function (el) {
      var dim = el.dataset.dimension;
      var report = data.reports[dim === data.period ? "period" : dim];
      var names = (data.labels[dim] || {});
      var categories = report.rows.map(function (row) {
        var value = row.group[dim];
        return value == null ? "未分类" : (names[value] || value);
      });
      var series = figures.map(function (f) {
        return {
          name: f[1], type: dim === data.period ? "line" : "bar",
          data: report.rows.map(function (row) {
            return row[f[0]] == null ? null : Math.round(row[f[0]] * 1000) / 10;
          })
        };
      });
      var chart = echarts.init(el, null, {renderer: "canvas"});
      chart.setOption({
        animation: false,
        tooltip: {trigger: "axis", valueFormatter: function (v) { return v == null ? "—" : v + "%"; }},
        legend: {top: 0},
        grid: {left: 48, right: 16, top: 40, bottom: 60},
        xAxis: {type: "category", data: categories, axisLabel: {interval: 0, rotate: categories.length > 6 ? 30 : 0}},
        yAxis: {type: "value", min: 0, max: 100, axisLabel: {formatter: "{value}%"}},
        series: series
      });
      window.addEventListener("resize", function () { chart.resize(); });
      el.dataset.drawn = "true";
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();

// Draws the plotly figures the server embedded as JSON (<script type="application/json" data-plotly="id">).
"use strict";
document.querySelectorAll("script[data-plotly]").forEach(function (node) {
  var target = document.getElementById(node.getAttribute("data-plotly"));
  var figure = JSON.parse(node.textContent);
  window.Plotly.newPlot(target, figure.data, figure.layout, { displaylogo: false, responsive: true });
});

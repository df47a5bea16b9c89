// Live progress of a restore: poll its status once a second until it ends.
// (No inline script anywhere: the Content-Security-Policy allows only this file.)
"use strict";
(function () {
  const box = document.getElementById("job");
  if (!box) return;
  const url = box.dataset.statusUrl;
  const text = (id, value) => { document.getElementById(id).textContent = value || ""; };
  function link(id, href, label) {
    if (document.getElementById(id)) return;
    const a = document.createElement("a");
    a.id = id; a.href = href; a.textContent = label;
    document.getElementById("job-links").append(a, " ");
  }
  async function poll() {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) return;
    const s = await response.json();
    text("job-state", s.state);
    text("job-seconds", String(s.seconds));
    text("job-items", s.items_total ? `${s.items} of ${s.items_total}` : String(s.items));
    text("job-bytes", String(s.bytes));
    text("job-error", s.error);
    text("job-summary", s.summary);
    if (s.report) link("job-report", "/report?key=" + encodeURIComponent(s.report), "Stored report");
    if (s.download) link("job-zip", "/restore/zip?id=" + encodeURIComponent(s.id), "Download the zip");
    if (s.state === "queued" || s.state === "running") setTimeout(poll, 1000);
  }
  poll();
})();

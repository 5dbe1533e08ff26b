// Live refresh: every data-refresh-ms, fetch this page's <main> again (?fragment=1) and swap it
// in, unless the reader is typing in a form field. Counts refreshes in body[data-refreshes].
(function () {
  var main = document.getElementById("live");
  if (!main || !window.fetch) return;
  var every = parseInt(main.getAttribute("data-refresh-ms"), 10) || 5000;
  function busy() {
    var a = document.activeElement;
    return a && main.contains(a) && (a.tagName === "INPUT" || a.tagName === "SELECT");
  }
  function refresh() {
    if (busy()) return;
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    fetch(url.toString(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var m = /^<!-- refreshed ([0-9:]+) -->/.exec(html);
        main.innerHTML = html;
        if (m) document.getElementById("refreshed").textContent = m[1];
        var n = parseInt(document.body.getAttribute("data-refreshes"), 10) || 0;
        document.body.setAttribute("data-refreshes", String(n + 1));
      })
      .catch(function () {});
  }
  setInterval(refresh, every);
})();

// The export jobs list refreshes itself while a job is queued or running: it is fetched again
// from its own page and swapped in place. Without JavaScript the list has a Refresh link.
(function () {
  "use strict";
  if (!window.fetch || !window.DOMParser) { return; }
  var pause = 1000;

  function schedule() {
    var jobs = document.getElementById("jobs");
    if (!jobs || jobs.getAttribute("data-active") !== "1") { return; }
    setTimeout(refresh, pause);
    pause = Math.min(pause * 1.5, 10000);
  }

  function refresh() {
    var jobs = document.getElementById("jobs");
    fetch(jobs.getAttribute("data-source"), { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("jobs");
        if (fresh) { jobs.replaceWith(document.importNode(fresh, true)); }
        schedule();
      })
      .catch(function () { pause = Math.min(pause * 2, 30000); schedule(); });
  }

  schedule();
})();

// Choosing a dataset shows its filters at once (without JavaScript: the Choose button).
(function () {
  "use strict";
  var choice = document.getElementById("dataset-choice");
  var select = document.getElementById("dataset");
  if (!choice || !select) { return; }
  select.addEventListener("change", function () { choice.submit(); });
})();

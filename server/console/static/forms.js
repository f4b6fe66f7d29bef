// The draft editor's live check: on every change, the question form is sent (not saved) to its
// check URL and the draft's problems are shown without a reload. Without JavaScript the form
// still saves and the page shows the same problems.
(function () {
  "use strict";
  var form = document.getElementById("question-form");
  var box = document.getElementById("problems");
  var state = document.getElementById("check-state");
  if (!form || !box || !window.fetch || !window.FormData) { return; }
  var url = form.getAttribute("data-check-url");
  var token = form.querySelector("input[name=csrf_token]").value;
  var timer = null;
  var sent = 0;

  function render(result) {
    box.textContent = "";
    var problems = result.problems || [];
    var head = document.createElement("p");
    if (problems.length === 0) {
      head.className = "ok-text";
      head.textContent = box.getAttribute("data-none") || "OK";
    } else {
      head.className = "error";
      head.textContent = (box.getAttribute("data-count") || "{n}").replace("{n}", problems.length);
      var list = document.createElement("ul");
      problems.forEach(function (problem) {
        var item = document.createElement("li");
        var where = document.createElement("code");
        where.textContent = problem.path;
        item.appendChild(where);
        item.appendChild(document.createTextNode(" " + problem.message));
        list.appendChild(item);
      });
      box.appendChild(head);
      box.appendChild(list);
      return;
    }
    box.appendChild(head);
  }

  function check() {
    var mine = ++sent;
    if (state) { state.textContent = state.getAttribute("data-checking") || ""; }
    fetch(url, {
      method: "POST",
      body: new FormData(form),
      headers: { "X-CSRF-Token": token, "Accept": "application/json" },
      credentials: "same-origin"
    }).then(function (response) {
      return response.json();
    }).then(function (result) {
      if (mine !== sent) { return; }  // a newer check is on its way
      render(result);
      if (state) { state.textContent = state.getAttribute("data-checked") || ""; }
    }).catch(function () {
      if (state) { state.textContent = state.getAttribute("data-failed") || ""; }
    });
  }

  function later() {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(check, 400);
  }

  form.addEventListener("input", later);
  form.addEventListener("change", later);
})();

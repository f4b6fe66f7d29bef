// Devices pages: ask before revoking a tablet or a code; while an enrolment QR code is shown,
// check every few seconds whether the tablet has used it, and then take the picture away.
// Without JavaScript the forms submit directly and a reload shows the status.
"use strict";
document.addEventListener("submit", function (event) {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

document.addEventListener("DOMContentLoaded", function () {
  const panel = document.querySelector(".enrolment[data-status-url]");
  if (!panel || panel.dataset.status !== "pending") {
    return;
  }
  const shown = panel.querySelector(".enrolment-status");
  const timer = window.setInterval(function () {
    fetch(panel.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (state) {
        if (!state || state.status === "pending") {
          return;
        }
        window.clearInterval(timer);
        panel.dataset.status = state.status;
        if (shown) {
          shown.textContent = state.text;
        }
        const figure = panel.querySelector("figure.qr");
        if (figure) {
          figure.remove();
        }
      })
      .catch(function () { /* offline for a moment: try again at the next tick */ });
  }, 5000);
});

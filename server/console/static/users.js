// Users pages: ask before the actions that cannot be taken back quietly (disabling an account,
// withdrawing a region). Without JavaScript the forms submit directly.
"use strict";
document.addEventListener("submit", function (event) {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// Forms marked data-submit-once disable their buttons once sent, so a double click
// sends one request. (The server is idempotent anyway: see lifecycle.issue_key.)
for (const form of document.querySelectorAll("form[data-submit-once]")) {
  form.addEventListener("submit", () => {
    // After this tick, so the clicked button's own name and value are still sent.
    setTimeout(() => {
      for (const button of form.querySelectorAll("button[type=submit]")) button.disabled = true;
      form.setAttribute("aria-busy", "true");
    });
  });
}
// Coming back to a page from the browser's back/forward cache: forms work again.
window.addEventListener("pageshow", (event) => {
  if (!event.persisted) return;
  for (const button of document.querySelectorAll("form[data-submit-once] button[type=submit]")) button.disabled = false;
});

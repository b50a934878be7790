// The Copy button on the show-once page: copies the key and says so.
const button = document.getElementById("copy-key");
const field = document.getElementById(button.dataset.copyTarget);
const status = document.getElementById("copy-status");

button.addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(field.value);
    button.textContent = "Copied";
    status.textContent = "The key is on your clipboard.";
  } catch {
    field.focus();
    field.select();
    status.textContent = "Could not copy automatically: the key is selected, press Ctrl+C (or ⌘C).";
  }
});

field.addEventListener("focus", () => field.select());

// A browser may restore this page from its back/forward cache despite no-store:
// never show the key again that way.
window.addEventListener("pageshow", (event) => {
  if (event.persisted) {
    field.value = "";
    window.location.replace(document.querySelector("a[href$='/keys/']")?.href || "/keys/");
  }
});

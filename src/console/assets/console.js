// rolegate console: progressive enhancement only. Every page works without this file; with it,
// a table marked `data-filter-target` gets a live filter, and `data-copy` buttons copy text.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Live filter: <input data-filter="ID"> hides the rows of table #ID whose text lacks the
  // typed words. The server-side search (the same form's submit) still works without it.
  for (const input of document.querySelectorAll("input[data-filter]")) {
    const table = document.getElementById(input.dataset.filter);
    if (!table) continue;
    const status = document.getElementById(input.dataset.filter + "-count");
    input.addEventListener("input", () => {
      const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      let shown = 0;
      for (const row of table.tBodies[0].rows) {
        const text = row.textContent.toLowerCase();
        const match = words.every((w) => text.includes(w));
        row.hidden = !match;
        if (match) shown += 1;
      }
      if (status) status.textContent = shown + " shown";
    });
  }

  // Copy buttons: <button data-copy="text">. Hidden until this script runs, since they
  // need it.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(button.dataset.copy);
        button.textContent = "Copied";
      } catch (_) {
        button.textContent = "Copy failed";
      }
    });
  }
});

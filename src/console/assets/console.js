// rolegate console: progressive enhancement only. Every page works without this file; with it,
// a table marked `data-filter-target` gets a live filter, and `data-copy` buttons copy text.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Live filter: <input data-filter="ID"> hides the rows of table #ID whose text lacks the
  // typed words. The server-side search (the same form's submit) still works without it.
  for (const input of document.querySelectorAll("input[data-filter]")) {
    const table = document.getElementById(input.dataset.filter);
    if (!table) continue;
    // A filter with no server-side search behind it (the mapping preview's changes) is
    // hidden, with its label, until this script runs.
    input.hidden = false;
    const label = document.querySelector(`label[for="${input.id}"]`);
    if (label) label.hidden = false;
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

  // File pickers: <input type="file" data-load-into="ID" data-format="SELECT"> reads the
  // chosen file into the textarea #ID (the mapping import), and picks YAML in #SELECT for a
  // .yaml/.yml file as the CLI does. Hidden until this script runs: pasting works without it.
  for (const input of document.querySelectorAll("input[type=file][data-load-into]")) {
    const target = document.getElementById(input.dataset.loadInto);
    if (!target) continue;
    input.hidden = false;
    const label = document.querySelector(`label[for="${input.id}"]`);
    if (label) label.hidden = false;
    input.addEventListener("change", async () => {
      const file = input.files && input.files[0];
      if (!file) return;
      target.value = await file.text();
      const format = document.getElementById(input.dataset.format || "");
      if (format) format.value = /\.ya?ml$/i.test(file.name) ? "yaml" : "json";
    });
  }
});

// The console's only script (no inline script: the Content-Security-Policy forbids them).
// A checkbox with data-select-all="<name>" checks or clears every checkbox of that name in
// its form. Listening on the document keeps it working in parts that htmx swaps in.
document.addEventListener("change", function (event) {
  var box = event.target;
  if (!(box instanceof HTMLInputElement) || !box.dataset.selectAll || !box.form) {
    return;
  }
  var name = box.dataset.selectAll;
  box.form.querySelectorAll('input[type="checkbox"]').forEach(function (other) {
    if (other.name === name) {
      other.checked = box.checked;
    }
  });
});

// ViewSync: asks Python to send a view's current state again once the view is on the page.
//
// When a page loads widget state from a running kernel (Voila, a reloaded JupyterLab tab),
// the kernel answers with a snapshot of every widget. An update a background thread sends
// after that snapshot was taken, but before the page has registered the widget's comm, is
// dropped by the page, and the view would show an older state for good (a grid cell stuck
// at "waiting" under a finished grid). Rendering happens after every model of the view
// exists, so asking for the state again here closes that gap.

const asked = new WeakSet();

function render({ model, el }) {
  el.classList.add("nbw-view-sync");
  el.style.display = "none";
  if (!asked.has(model)) {
    asked.add(model);
    model.send({ event: "rendered" });
  }
}

export default { render };

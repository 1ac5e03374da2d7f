// Ctrl+Enter (Cmd+Enter on macOS) in a PromptPanel's prompt box asks Python to generate.
//
// The view of this widget sits inside the panel. It listens on the window in the capture
// phase (before JupyterLab's own shortcuts, which would run the cell) and reacts only when
// the key is pressed in the prompt textarea of the same panel view that holds it, so two
// panels, or the same panel shown twice, never fire for one another.

function render({ model, el }) {
  el.classList.add("nbw-keys");

  function onKeydown(event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || event.isComposing) {
      return;
    }
    const panelClass = model.get("panel_class");
    const target = event.target;
    if (!panelClass || !(target instanceof Element) || target.tagName !== "TEXTAREA") {
      return;
    }
    const panel = target.closest("." + panelClass);
    if (!panel || !panel.contains(el) || !target.closest(".nbw-prompt")) {
      return;
    }
    event.preventDefault();
    event.stopImmediatePropagation();
    model.send({ event: "submit", value: target.value });
  }

  window.addEventListener("keydown", onKeydown, true);
  return () => window.removeEventListener("keydown", onKeydown, true);
}

export default { render };

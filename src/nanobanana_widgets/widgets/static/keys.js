// The PromptPanel's front-end helper (no build step):
//
// 1. Ctrl+Enter (Cmd+Enter on macOS) in the panel's prompt box asks Python to run.
// 2. A click on the panel's Generate button first sends the prompt box's text. ipywidgets
//    holds back a model's update while an earlier one is unanswered, so a button click
//    sent at once could otherwise reach Python before the last words typed.
//
// The view of this widget sits inside the panel. It listens on the window in the capture
// phase (before JupyterLab's own shortcuts, which would run the cell) and reacts only to
// events inside the same panel view that holds it, so two panels, or the same panel shown
// twice, never fire for one another.

function render({ model, el }) {
  el.classList.add("nbw-keys");

  function ownPanel(target) {
    const panelClass = model.get("panel_class");
    if (!panelClass || !(target instanceof Element)) {
      return null;
    }
    const panel = target.closest("." + panelClass);
    return panel && panel.contains(el) ? panel : null;
  }

  function onKeydown(event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || event.isComposing) {
      return;
    }
    const target = event.target;
    if (!(target instanceof Element) || target.tagName !== "TEXTAREA") {
      return;
    }
    if (!ownPanel(target) || !target.closest(".nbw-prompt")) {
      return;
    }
    event.preventDefault();
    event.stopImmediatePropagation();
    model.send({ event: "submit", value: target.value });
  }

  function onClick(event) {
    const target = event.target instanceof Element ? event.target.closest(".nbw-generate") : null;
    const panel = target ? ownPanel(target) : null;
    if (!panel || target.disabled) {
      return;
    }
    const prompt = panel.querySelector(".nbw-prompt textarea");
    if (prompt) {
      model.send({ event: "prompt", value: prompt.value });
    }
  }

  window.addEventListener("keydown", onKeydown, true);
  window.addEventListener("click", onClick, true);
  return () => {
    window.removeEventListener("keydown", onKeydown, true);
    window.removeEventListener("click", onClick, true);
  };
}

export default { render };

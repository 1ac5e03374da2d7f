// The PromptPanel's front-end helper (no build step):
//
// 1. Ctrl+Enter (Cmd+Enter on macOS) in the panel's prompt box asks Python to run.
// 2. A click on the panel's Generate button first sends the prompt box's text. ipywidgets
//    holds back a model's update while an earlier one is unanswered, so a button click
//    sent at once could otherwise reach Python before the last words typed.
//
// 3. Image files dropped anywhere on the panel, or pasted (Ctrl/Cmd+V) into the prompt box
//    or onto the inputs area, are sent to Python (one message per file, its bytes as a
//    binary buffer); text pastes are left alone.
// 4. A click on a `data-nbw-copy` element of the panel (a result card's ids) copies its
//    value to the clipboard.
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

  // --- 3. dropped and pasted images ---------------------------------------------------

  const MAX_BYTES = 40 * 1024 * 1024;

  function imageFiles(data) {
    const files = [];
    if (!data) {
      return files;
    }
    for (const item of data.items || []) {
      if (item.kind === "file" && item.type.startsWith("image/")) {
        const file = item.getAsFile();
        if (file) {
          files.push(file);
        }
      }
    }
    if (!files.length) {
      for (const file of data.files || []) {
        if (file.type.startsWith("image/")) {
          files.push(file);
        }
      }
    }
    return files;
  }

  function hasFiles(data) {
    return !!data && [...(data.types || [])].includes("Files");
  }

  async function sendFiles(files, how) {
    for (const file of files) {
      const name = file.name || "pasted image";
      if (file.size > MAX_BYTES) {
        model.send({ event: "file-refused", name, size: file.size, how });
        continue;
      }
      const buffer = await file.arrayBuffer();
      model.send({ event: "file", name, type: file.type, how }, undefined, [buffer]);
    }
  }

  function markInputsArea() {
    const panelClass = model.get("panel_class");
    const panel = panelClass ? el.closest("." + panelClass) : null;
    const area = panel ? panel.querySelector(".nbw-inputs") : null;
    if (area && !area.hasAttribute("tabindex")) {
      area.tabIndex = 0;  // focusable, so Ctrl/Cmd+V there pastes
      area.title = "Drop or paste (Ctrl/Cmd+V) images here to add them";
    }
    return !!area;
  }

  let tries = 0;
  function markSoon() {
    if (!markInputsArea() && tries++ < 120) {
      requestAnimationFrame(markSoon);
    }
  }
  markSoon();

  function onDragOver(event) {
    const panel = ownPanel(event.target);
    if (!panel || !hasFiles(event.dataTransfer)) {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
    event.dataTransfer.dropEffect = "copy";
    panel.classList.add("nbw-drop-target");
  }

  function onDragLeave(event) {
    const panel = ownPanel(event.target);
    if (panel && !(event.relatedTarget instanceof Node && panel.contains(event.relatedTarget))) {
      panel.classList.remove("nbw-drop-target");
    }
  }

  function onDrop(event) {
    const panel = ownPanel(event.target);
    if (!panel || !hasFiles(event.dataTransfer)) {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
    panel.classList.remove("nbw-drop-target");
    const files = imageFiles(event.dataTransfer);
    if (!files.length) {
      model.send({ event: "file-refused", name: "", size: 0, how: "dropped" });
      return;
    }
    sendFiles(files, "dropped");
  }

  function onPaste(event) {
    const target = event.target instanceof Element ? event.target : null;
    if (!target || !ownPanel(target)) {
      return;
    }
    if (!target.closest(".nbw-prompt") && !target.closest(".nbw-inputs")) {
      return;
    }
    const files = imageFiles(event.clipboardData);
    if (!files.length) {
      return;  // text: the prompt box takes it as usual
    }
    event.preventDefault();
    event.stopPropagation();
    sendFiles(files, "pasted");
  }

  // --- 4. copy an id ----------------------------------------------------------------------

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    const area = document.createElement("textarea");
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try {
      document.execCommand("copy");
    } finally {
      area.remove();
    }
    return Promise.resolve();
  }

  function onCopyClick(event) {
    const target = event.target instanceof Element ? event.target.closest("[data-nbw-copy]") : null;
    if (!target || !ownPanel(target)) {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
    const value = target.getAttribute("data-nbw-copy") || "";
    copyText(value).then(
      () => { target.textContent = "copied"; },
      () => { target.textContent = "select and copy"; },
    );
    setTimeout(() => { target.textContent = "copy"; }, 1500);
  }

  window.addEventListener("keydown", onKeydown, true);
  window.addEventListener("click", onClick, true);
  window.addEventListener("click", onCopyClick, true);
  window.addEventListener("dragover", onDragOver, true);
  window.addEventListener("dragleave", onDragLeave, true);
  window.addEventListener("drop", onDrop, true);
  window.addEventListener("paste", onPaste, true);
  return () => {
    window.removeEventListener("keydown", onKeydown, true);
    window.removeEventListener("click", onClick, true);
    window.removeEventListener("click", onCopyClick, true);
    window.removeEventListener("dragover", onDragOver, true);
    window.removeEventListener("dragleave", onDragLeave, true);
    window.removeEventListener("drop", onDrop, true);
    window.removeEventListener("paste", onPaste, true);
  };
}

export default { render };

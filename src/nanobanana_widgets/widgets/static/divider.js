// The comparison's before/after stage (no build step). The stage's HTML comes from Python
// (render/compare.py: stage_html); this module makes it move:
//
// * Drag anywhere on the images (mouse, pen or touch) and the divider follows the pointer;
//   the images are never selected or dragged away (no blue tint).
// * With the stage focused (a click, or Tab), the arrow keys move the divider by 2 %
//   (Shift: 10 %), Home and End to the ends. The keys are taken before JupyterLab sees
//   them, so they never act on the notebook.
// * The divider is drawn at once; Python hears the value at most every 60 ms and when the
//   drag ends, and a value set from Python (the slider, `c.slider.value = 30`) moves it too.

function clamp(v) {
  return Math.max(0, Math.min(100, Math.round(v)));
}

function render({ model, el }) {
  el.classList.add("nbw-divider-host");
  let stage = null;
  let dragging = false;
  let pending = null;
  let timer = null;

  function apply(v) {
    if (!stage) {
      return;
    }
    const top = stage.querySelector(".nbw-cmp-top");
    const line = stage.querySelector(".nbw-cmp-divider");
    if (top) {
      top.style.clipPath = `inset(0 ${100 - v}% 0 0)`;
    }
    if (line) {
      line.style.left = `${v}%`;
    }
    stage.setAttribute("aria-valuenow", String(v));
    stage.setAttribute("aria-valuetext", `${v}% of the first image shown`);
  }

  function flush() {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    if (pending !== null && pending !== model.get("value")) {
      model.set("value", pending);
      model.save_changes();
    }
    pending = null;
  }

  function set(v, now) {
    const value = clamp(v);
    apply(value);
    pending = value;
    if (now) {
      flush();
    } else if (timer === null) {
      timer = setTimeout(flush, 60);
    }
  }

  function fromPointer(event) {
    const box = stage.getBoundingClientRect();
    return box.width > 0 ? ((event.clientX - box.left) / box.width) * 100 : 50;
  }

  function onPointerDown(event) {
    if (event.button !== 0) {
      return;
    }
    // No text or image selection, no native image drag, and (per the Pointer Events spec)
    // no compatibility mouse events for the notebook to act on.
    event.preventDefault();
    event.stopPropagation();
    dragging = true;
    stage.setPointerCapture(event.pointerId);
    stage.focus({ preventScroll: true });
    stage.classList.add("nbw-dragging");
    set(fromPointer(event), false);
  }

  function onPointerMove(event) {
    if (dragging) {
      event.preventDefault();
      set(fromPointer(event), false);
    }
  }

  function onPointerUp(event) {
    if (!dragging) {
      return;
    }
    dragging = false;
    stage.classList.remove("nbw-dragging");
    if (stage.hasPointerCapture(event.pointerId)) {
      stage.releasePointerCapture(event.pointerId);
    }
    flush();
  }

  const STEPS = { ArrowLeft: -2, ArrowDown: -2, ArrowRight: 2, ArrowUp: 2, PageDown: -10, PageUp: 10 };

  // Window, capture phase: before JupyterLab's own shortcuts (which listen on the document).
  function onKeydown(event) {
    if (!stage || event.target !== stage || event.altKey || event.ctrlKey || event.metaKey) {
      return;
    }
    const current = pending !== null ? pending : model.get("value");
    let next = null;
    if (event.key in STEPS) {
      next = current + STEPS[event.key] * (event.shiftKey ? 5 : 1);
    } else if (event.key === "Home") {
      next = 0;
    } else if (event.key === "End") {
      next = 100;
    }
    if (next === null) {
      return;
    }
    event.preventDefault();
    event.stopImmediatePropagation();
    set(next, true);
  }

  function bind() {
    stage = el.querySelector(".nbw-cmp-stage");
    if (!stage) {
      return;
    }
    stage.addEventListener("pointerdown", onPointerDown);
    stage.addEventListener("pointermove", onPointerMove);
    stage.addEventListener("pointerup", onPointerUp);
    stage.addEventListener("pointercancel", onPointerUp);
    stage.addEventListener("dragstart", (event) => event.preventDefault());
    apply(clamp(model.get("value")));
  }

  function draw() {
    el.innerHTML = model.get("html");
    bind();
  }

  function onValue() {
    if (!dragging && pending === null) {
      apply(clamp(model.get("value")));
    }
  }

  model.on("change:html", draw);
  model.on("change:value", onValue);
  window.addEventListener("keydown", onKeydown, true);
  draw();
  return () => {
    model.off("change:html", draw);
    model.off("change:value", onValue);
    window.removeEventListener("keydown", onKeydown, true);
    if (timer !== null) {
      clearTimeout(timer);
    }
  };
}

export default { render };

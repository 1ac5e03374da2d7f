// The tournament's keyboard and clicks (no build step).
//
// The tournament's view is made focusable; while the focus is inside it (a click on it, or
// Tab), these keys vote on the pair shown:  1 or ← the left image,  2 or → the right one,
// = (or 0) a tie,  s skip,  u undo the last vote. A click on an image votes for it. The
// keys are taken in the window's capture phase, before JupyterLab's own shortcuts, so they
// never change the notebook. Each vote names the pair it was cast on (the stage's
// data-pair), so a key pressed twice in a row cannot vote on a pair not seen yet; nothing
// is sent while the pair's images are still loading. Clicks on the vote buttons go the
// same way (with the pair named).

const KEYS = {
  "1": "left", ArrowLeft: "left", "2": "right", ArrowRight: "right",
  "=": "tie", "0": "tie", s: "skip", S: "skip", u: "undo", U: "undo",
};

function render({ model, el }) {
  el.classList.add("nbw-vote-keys");
  el.style.display = "none";
  let root = null;
  let tries = 0;

  function findRoot() {
    if (root && root.isConnected) {
      return root;
    }
    const scope = model.get("scope");
    root = scope ? el.closest("." + scope) : null;
    return root;
  }

  function shownPair() {
    const stage = root ? root.querySelector(".nbw-trn-stage") : null;
    if (!stage || stage.dataset.ready !== "1") {
      return null;
    }
    return Number(stage.dataset.pair);
  }

  function send(outcome) {
    const pair = shownPair();
    if (pair === null && outcome !== "undo") {
      return;
    }
    if (outcome === "left" || outcome === "right") {
      const card = root.querySelector(`.nbw-trn-card[data-side="${outcome}"]`);
      if (card) {
        card.classList.add("nbw-trn-chosen");
      }
    }
    model.send({ event: "vote", outcome, pair });
  }

  function onKeydown(event) {
    const r = findRoot();
    if (!r || !r.contains(document.activeElement) || event.isComposing) {
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    const target = event.target;
    if (target instanceof Element && target.closest("input, textarea, select, [contenteditable]")) {
      return;
    }
    const outcome = KEYS[event.key];
    if (!outcome) {
      return;
    }
    event.preventDefault();
    event.stopImmediatePropagation();
    send(outcome);
  }

  function onClick(event) {
    const r = findRoot();
    const target = event.target instanceof Element ? event.target : null;
    if (!r || !target || !r.contains(target)) {
      return;
    }
    const button = target.closest("[class*='nbw-trn-vote-']");
    if (button && r.contains(button)) {
      const match = /nbw-trn-vote-(left|right|tie|skip|undo)/.exec(button.className);
      if (match && !button.disabled) {
        event.preventDefault();
        event.stopPropagation();
        send(match[1]);
        r.focus({ preventScroll: true });
      }
      return;
    }
    const card = target.closest(".nbw-trn-card");
    if (card && r.contains(card)) {
      send(card.dataset.side);
      r.focus({ preventScroll: true });
    }
  }

  function onFocus() {
    const r = findRoot();
    if (r) {
      r.classList.toggle("nbw-trn-keys-on", r.contains(document.activeElement));
    }
  }

  function attach() {
    const r = findRoot();
    if (!r) {
      if (tries++ < 200) {
        setTimeout(attach, 50);
      }
      return;
    }
    if (!r.hasAttribute("tabindex")) {
      r.tabIndex = 0;
    }
    r.setAttribute("aria-keyshortcuts", "1 2 = s u");
  }

  window.addEventListener("keydown", onKeydown, true);
  window.addEventListener("click", onClick, true);
  window.addEventListener("focusin", onFocus, true);
  window.addEventListener("focusout", onFocus, true);
  attach();
  return () => {
    window.removeEventListener("keydown", onKeydown, true);
    window.removeEventListener("click", onClick, true);
    window.removeEventListener("focusin", onFocus, true);
    window.removeEventListener("focusout", onFocus, true);
  };
}

export default { render };

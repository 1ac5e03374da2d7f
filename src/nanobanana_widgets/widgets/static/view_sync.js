// ViewSync: asks Python to send a view's current state again once the view is on the page.
//
// When a page loads widget state from a running kernel (Voila, a reloaded JupyterLab tab),
// the kernel answers with a snapshot of every widget. An update a background thread sends
// after that snapshot was taken, but before the page has registered the widget's comm, is
// dropped by the page, and the view would show an older state for good (a grid cell stuck
// at "waiting" under a finished grid). Rendering happens after every model of the view
// exists, so asking for the state again here closes that gap.
//
// One more thing: links to full-size copies are relative to the notebook (they must work in
// a saved or exported notebook too). A widget's HTML is not resolved by the front end, so
// just before such a link is followed it is pointed at the server's files route
// (JupyterLab, Notebook 7, Voila). Elsewhere (a static page) it stays relative.
//
// Without a kernel (the HTML widget manager of an exported page) `model.send` does
// nothing, so nothing here can break a view.

const asked = new WeakSet();
let linksWatched = false;

const ROUTES = [
  [/^lab\/(?:workspaces\/[^/]+\/)?tree\/(.*)$/, "files/"],
  [/^doc\/(?:workspaces\/[^/]+\/)?tree\/(.*)$/, "files/"],
  [/^notebooks\/(.*)$/, "files/"],
  [/^voila\/render\/(.*)$/, "voila/files/"],
];

function baseUrl() {
  let base = "/";
  const config = document.getElementById("jupyter-config-data");
  if (config) {
    try {
      base = JSON.parse(config.textContent || "{}").baseUrl || base;
    } catch (_error) {
      // keep "/"
    }
  }
  return base.endsWith("/") ? base : base + "/";
}

// The URL the server gives a file at `rel` (URL-encoded, relative to the notebook), or null.
function filesUrl(rel) {
  if (!/^https?:$/.test(location.protocol)) {
    return null;
  }
  const base = baseUrl();
  if (!location.pathname.startsWith(base)) {
    return null;
  }
  const rest = location.pathname.slice(base.length);
  for (const [pattern, files] of ROUTES) {
    const match = rest.match(pattern);
    if (match) {
      const notebook = match[1];
      const dir = notebook.includes("/") ? notebook.slice(0, notebook.lastIndexOf("/") + 1) : "";
      return location.origin + base + files + dir + rel;
    }
  }
  return null;
}

function isRelative(href) {
  return !!href && !/^(?:[a-z][a-z0-9+.-]*:|\/|#|\?)/i.test(href);
}

function resolveLink(event) {
  const target = event.target instanceof Element ? event.target.closest("a[href]") : null;
  if (!target || !target.closest(".nbw-view")) {
    return;
  }
  const href = target.getAttribute("href");
  if (!isRelative(href)) {
    return;
  }
  const url = filesUrl(href);
  if (url) {
    target.setAttribute("href", url);
  }
}

function watchLinks() {
  if (linksWatched) {
    return;
  }
  linksWatched = true;
  for (const type of ["mousedown", "click", "auxclick", "keydown", "focusin"]) {
    window.addEventListener(type, resolveLink, true);
  }
}

function render({ model, el }) {
  el.classList.add("nbw-view-sync");
  el.style.display = "none";
  watchLinks();
  if (!asked.has(model)) {
    asked.add(model);
    model.send({ event: "rendered" });
  }
}

export default { render };

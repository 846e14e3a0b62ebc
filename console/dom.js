// Building the page from data without ever parsing data as HTML: every value becomes a text node
// (or an attribute set with setAttribute), so a payload like "<img src=x onerror=…>" shows as
// those characters and runs nothing.

/**
 * A new element. `props`: `class`, `text` (its text content), `on<event>` (a listener),
 * `dataset` (an object), anything else an attribute (`true`: present, `false`/null: absent).
 * Children are nodes or values (shown as text); arrays are flattened, null and false skipped.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = String(value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

/** Appends `children` (nodes or values shown as text) to `node`. */
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces everything in `node` with `children`. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** A `<dl>` of [term, value] pairs; a value may be a node. */
export function definitions(pairs, className = "fields") {
  return el(
    "dl",
    { class: className },
    pairs.map(([term, value]) => [el("dt", { text: term }), el("dd", {}, value)]),
  );
}

/** The hash link of one call's page. Session ids are URL-safe, and encoded all the same. */
export function callHref(sessionId) {
  return `#/calls/${encodeURIComponent(sessionId)}`;
}

/** Shows `text` in the banner under the header (role=alert), with optional action buttons. */
export function showNotice(text, kind = "error", ...actions) {
  const notice = document.getElementById("notice");
  notice.className = `notice notice-${kind}`;
  replace(notice, el("span", { text }), actions);
  notice.hidden = false;
}

export function clearNotice() {
  const notice = document.getElementById("notice");
  notice.hidden = true;
  notice.replaceChildren();
}

let pending = null;

/** Shows `text` once the next view is on screen (a notice now would go with the old view). */
export function noticeAfterNavigation(text, kind = "info") {
  pending = { text, kind };
}

/** Shows the notice left by `noticeAfterNavigation`, if any. */
export function showPendingNotice() {
  if (pending) showNotice(pending.text, pending.kind);
  pending = null;
}

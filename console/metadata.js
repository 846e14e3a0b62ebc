// A call's metadata in the call view: shown as text, and edited as pretty JSON in a textarea (one
// JSON object keeps every value's type: numbers, booleans, nested objects and arrays, which rows
// of text inputs could not). Save sends a JSON Merge Patch (RFC 7396) of what changed between
// the metadata the editor started from and the edited text (a removed key: null; a changed or new
// key: its value; a changed object: key by key), with If-Match: the ETag of that read, so a change
// made elsewhere meanwhile is never overwritten unseen (412: the call is read again and the edit
// is kept, to re-apply).

import { ApiError, describe, request, sessionPath } from "./api.js";
import { definitions, el, replace } from "./dom.js";
import { valueText } from "./format.js";

export function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Whether two JSON values are equal (objects whatever their key order). */
export function sameJson(a, b) {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((v, i) => sameJson(v, b[i]));
  if (!isObject(a) || !isObject(b)) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && sameJson(a[k], b[k]));
}

/** Sets `key` as an own property, whatever it is ("__proto__" included). */
function put(object, key, value) {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}

/** The merge patch that turns the object `from` into the object `to`. */
export function mergePatch(from, to) {
  const patch = {};
  for (const key of Object.keys(from)) if (!Object.hasOwn(to, key)) put(patch, key, null);
  for (const [key, value] of Object.entries(to)) {
    const had = Object.hasOwn(from, key);
    if (had && sameJson(from[key], value)) continue;
    put(patch, key, had && isObject(from[key]) && isObject(value) ? mergePatch(from[key], value) : value);
  }
  return patch;
}

/** `target` with the merge patch `patch` applied (RFC 7396), as the service applies it. */
export function applyMergePatch(target, patch) {
  if (!isObject(patch)) return patch;
  const result = {};
  if (isObject(target)) for (const [k, v] of Object.entries(target)) put(result, k, v);
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else put(result, key, applyMergePatch(Object.hasOwn(result, key) ? result[key] : undefined, value));
  }
  return result;
}

/**
 * Where `to` sets a member to null that `from` does not hold as null: a merge patch cannot say
 * that (null removes the key), so such an edit is refused before sending.
 */
export function nullsSet(from, to, path = []) {
  const found = [];
  for (const [key, value] of Object.entries(to)) {
    const was = isObject(from) && Object.hasOwn(from, key) ? from[key] : undefined;
    if (value === null && was !== null) found.push([...path, key].join("."));
    else if (isObject(value) && !sameJson(was, value)) found.push(...nullsSet(isObject(was) ? was : {}, value, [...path, key]));
  }
  return found;
}

const pretty = (metadata) => JSON.stringify(metadata ?? {}, null, 2);

function metadataList(metadata) {
  const entries = Object.entries(metadata || {});
  if (entries.length === 0) return el("p", { class: "muted", text: "No metadata." });
  return definitions(entries.map(([k, v]) => [k, valueText(v)]), "fields metadata");
}

const keysText = (keys) => keys.map((k) => `“${k}”`).join(", ");

/**
 * The metadata section of the call `sessionId`. `update(metadata, etag)` is called with every
 * read of the session (etag null: unknown, keep the last); `reload()` reads the session again
 * (and calls `update`); `saved(session, etag)` takes the answer to a save; `gone(text)` says the
 * call cannot be changed any more. Until `signal` aborts, leaving the page with an unsaved edit
 * asks first.
 */
export function metadataPanel(sessionId, { reload, saved, signal }) {
  const uid = `md-${Math.random().toString(36).slice(2, 8)}`;
  const view = el("div", { class: "metadata-view" });
  const status = el("p", { class: "metadata-status", role: "status" });
  const edit = el("button", {
    type: "button",
    class: "edit-metadata",
    text: "Edit metadata",
    "aria-expanded": "false",
    "aria-controls": `${uid}-editor`,
    hidden: true,
  });
  const hint = el("p", {
    id: `${uid}-hint`,
    class: "muted small",
    text: "One JSON object. Change or add keys; delete a key to remove it. Only what you change is sent. Ctrl+Enter saves.",
  });
  const textarea = el("textarea", {
    id: `${uid}-text`,
    class: "metadata-text",
    spellcheck: "false",
    autocomplete: "off",
    autocapitalize: "off",
    "aria-describedby": `${uid}-hint ${uid}-message`,
  });
  const message = el("div", { id: `${uid}-message`, class: "editor-message", role: "alert" });
  const save = el("button", { type: "submit", class: "primary", text: "Save" });
  const reapply = el("button", { type: "button", text: "Re-apply my changes", hidden: true });
  const cancel = el("button", { type: "button", text: "Cancel" });
  const editor = el(
    "form",
    { id: `${uid}-editor`, class: "metadata-editor", novalidate: true, hidden: true, "aria-label": "Edit metadata" },
    el("label", { for: textarea.id, text: "Metadata (JSON)" }),
    hint,
    textarea,
    message,
    el("div", { class: "actions" }, save, reapply, cancel),
  );
  const node = el("div", { class: "metadata-panel" }, view, status, edit, editor);

  let current = { metadata: null, etag: null, json: null }; // the session as last read
  let base = null; // what the editor started from: { metadata, etag }
  let conflictBase = null; // after a 412: the metadata the kept edit was made against
  let saving = false;
  let closed = null; // why the call cannot be changed any more

  const say = (text, kind = "error", items = []) => {
    message.className = `editor-message editor-${kind}`;
    replace(message, text ? el("p", { text }) : null, items.length ? el("ul", { class: "field-errors" }, items.map((t) => el("li", { text: t }))) : null);
  };
  const invalid = (yes) => textarea.setAttribute("aria-invalid", yes ? "true" : "false");
  const busy = (yes) => {
    saving = yes;
    save.disabled = yes || closed !== null;
    reapply.disabled = yes;
    cancel.disabled = yes;
    textarea.readOnly = yes;
    editor.setAttribute("aria-busy", yes ? "true" : "false");
    save.textContent = yes ? "Saving…" : "Save";
  };
  const open = () => {
    base = { metadata: current.metadata ?? {}, etag: current.etag };
    conflictBase = null;
    textarea.value = pretty(base.metadata);
    textarea.rows = Math.min(20, Math.max(6, textarea.value.split("\n").length + 1));
    say("");
    invalid(false);
    status.textContent = "";
    reapply.hidden = true;
    editor.hidden = false;
    edit.hidden = true;
    edit.setAttribute("aria-expanded", "true");
    textarea.focus();
  };
  const close = () => {
    editor.hidden = true;
    base = null;
    conflictBase = null;
    edit.hidden = false;
    edit.setAttribute("aria-expanded", "false");
    edit.focus();
  };

  /** The textarea as a metadata object, or null after saying what is wrong with it. */
  const parsed = () => {
    let value;
    try {
      value = JSON.parse(textarea.value);
    } catch (error) {
      invalid(true);
      say(`This is not valid JSON, so nothing was sent: ${error.message}`);
      return null;
    }
    if (!isObject(value)) {
      invalid(true);
      say("The metadata must be one JSON object ({ … }), so nothing was sent.");
      return null;
    }
    return value;
  };

  const submit = async () => {
    if (saving || closed !== null || base === null) return;
    const edited = parsed();
    if (edited === null) return;
    const nulls = nullsSet(base.metadata, edited);
    if (nulls.length) {
      invalid(true);
      say(`A value cannot be set to null (in a merge patch null removes the key), so nothing was sent: ${keysText(nulls)}. Remove the key instead.`);
      return;
    }
    invalid(false);
    const patch = mergePatch(base.metadata, edited);
    if (Object.keys(patch).length === 0) {
      say("Nothing changed: there is nothing to save.", "info");
      return;
    }
    const headers = base.etag ? { "If-Match": base.etag } : {};
    const editedFrom = base.metadata;
    busy(true);
    say("");
    try {
      if (!base.etag) throw new ApiError(412, { code: "precondition_failed" }); // never read with an ETag
      const response = await request(sessionPath(sessionId), {
        method: "PATCH",
        headers,
        contentType: "application/merge-patch+json",
        body: { metadata: patch },
      });
      const session = await response.json();
      busy(false);
      saved(session, response.headers.get("ETag"));
      close();
      status.textContent = sameJson(session.metadata ?? {}, edited)
        ? "Metadata saved."
        : "Saved, but the call's metadata is not exactly your edit: check it above.";
    } catch (error) {
      busy(false);
      if (!(error instanceof ApiError)) {
        say(`Could not save: ${describe(error)}. Your edit is kept; try again.`);
      } else if (error.status === 412) {
        await conflict(editedFrom);
      } else if (error.status === 400 && Array.isArray(error.problem.errors) && error.problem.errors.length) {
        invalid(true);
        say("The service refused this metadata; nothing was changed:", "error", error.problem.errors.map((e) => `${e.field}: ${e.message}`));
      } else if (error.status === 403) {
        say("This API key cannot write: changing metadata needs a key with the write scope. Nothing was changed; your edit is kept.");
      } else if (error.status === 401) {
        say("The service needs a valid API key to save. Enter one, then Save again; your edit is kept.");
      } else if (error.status === 410 || error.status === 404) {
        gone(error.status === 410 ? "This call was erased: its metadata cannot be changed." : "There is no call with this id any more.");
      } else {
        say(`Could not save: ${describe(error)}. Your edit is kept; try again.`);
      }
    }
  };

  /** After a 412: read the call again, keep the edit, and say what changed meanwhile. */
  const conflict = async (editedFrom) => {
    try {
      await reload();
    } catch (error) {
      say(`This call changed while you were editing, so nothing was saved, and reading it again failed (${describe(error)}). Your edit is kept; Save tries again.`);
      base = { metadata: editedFrom, etag: null };
      return;
    }
    base = { metadata: current.metadata ?? {}, etag: current.etag };
    const changed = Object.keys(mergePatch(editedFrom, base.metadata));
    if (changed.length === 0) {
      say("This call changed while you were editing (new events or its end), but not its metadata. Nothing was saved; your edit is still here: Save again to apply it.", "warning");
      return;
    }
    conflictBase = editedFrom;
    reapply.hidden = false;
    say(
      `This call's metadata was changed elsewhere while you were editing (${keysText(changed)}), so nothing was saved. ` +
        "The metadata above is the current one; your edit is still here. “Re-apply my changes” puts only your changes on top of the current metadata; Save as it is would make the metadata exactly your text, undoing the other change.",
      "warning",
    );
  };

  const gone = (text) => {
    closed = text;
    save.disabled = true;
    edit.disabled = true;
    if (!editor.hidden) say(`${text} Your edit is still here, but it cannot be saved.`);
    else status.textContent = text;
  };

  window.addEventListener("beforeunload", (event) => {
    if (!editor.hidden && base !== null && textarea.value !== pretty(base.metadata)) event.preventDefault();
  }, { signal });
  edit.addEventListener("click", open);
  cancel.addEventListener("click", close);
  editor.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submit();
    }
  });
  textarea.addEventListener("input", () => {
    if (textarea.getAttribute("aria-invalid") === "true") invalid(false);
  });
  reapply.addEventListener("click", () => {
    if (conflictBase === null || base === null) return;
    const edited = parsed();
    if (edited === null) return;
    const mine = mergePatch(conflictBase, edited);
    const theirs = mergePatch(conflictBase, base.metadata);
    const both = Object.keys(mine).filter((k) => Object.hasOwn(theirs, k));
    textarea.value = pretty(applyMergePatch(base.metadata, mine));
    conflictBase = null;
    reapply.hidden = true;
    invalid(false);
    say(
      `Your changes are re-applied on top of the current metadata${both.length ? `; you and the other change both changed ${keysText(both)}, and yours is kept here` : ""}. Check them, then Save.`,
      "info",
    );
    textarea.focus();
  });

  return {
    node,
    update(metadata, etag) {
      const json = JSON.stringify(metadata ?? {});
      if (json !== current.json) replace(view, metadataList(metadata));
      current = { metadata: metadata ?? {}, etag: etag ?? (json === current.json ? current.etag : null), json };
      if (closed === null) edit.hidden = !editor.hidden;
      // New events change the ETag but not the metadata: the edit still applies as it is.
      if (base !== null && etag && !saving && sameJson(base.metadata, current.metadata)) base.etag = etag;
    },
    gone,
  };
}

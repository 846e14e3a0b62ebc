// The webhooks page's form for a new endpoint (POST /webhooks), with the service's validation
// errors shown next to the fields they name, and the box that shows a signing secret with a way
// to copy it.

import { ApiError, describe, request } from "./api.js";
import { el } from "./dom.js";
import { isObject } from "./metadata.js";

/** The change types an endpoint can receive; the session.* ones are the service's default. */
export const TYPES = ["session.created", "session.updated", "session.ended", "session.deleted", "event.appended"];
const DEFAULT_TYPES = TYPES.filter((t) => t.startsWith("session."));

/**
 * A signing secret in a read-only box with a Copy button. `label` names it; `note` (optional)
 * says what to do with it.
 */
export function secretBox(secret, { label = "Signing secret", note = null } = {}) {
  const uid = `sec-${Math.random().toString(36).slice(2, 8)}`;
  const input = el("input", {
    id: uid,
    class: "secret-value",
    type: "text",
    readonly: true,
    value: secret,
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": note ? `${uid}-note` : null,
  });
  const copied = el("span", { class: "copy-status", role: "status" });
  const copy = el("button", { type: "button", class: "quiet", text: "Copy" });
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(input.value);
      copied.textContent = "Copied.";
    } catch {
      // No clipboard API here (or no permission): copy the selection instead.
      input.focus();
      input.select();
      let done = false;
      try {
        done = document.execCommand("copy");
      } catch {
        done = false;
      }
      copied.textContent = done ? "Copied." : "Selected: press Ctrl+C (⌘C) to copy it.";
    }
  });
  input.addEventListener("focus", () => input.select());
  return el(
    "div",
    { class: "secret" },
    el("label", { for: uid, text: label }),
    el("div", { class: "secret-row" }, input, copy),
    copied,
    note ? el("p", { id: `${uid}-note`, class: "muted small", text: note }) : null,
  );
}

/**
 * The form for a new endpoint. `onCreated(endpoint)` gets the service's answer (with its secret).
 */
export function createForm({ onCreated, signal }) {
  const field = (id, label, input, help = null) => {
    const error = el("p", { id: `${id}-error`, class: "field-error", role: "alert" });
    input.setAttribute("aria-describedby", [help ? `${id}-help` : null, `${id}-error`].filter(Boolean).join(" "));
    return {
      node: el(
        "div",
        { class: "field" },
        el("label", { for: id, text: label }),
        input,
        help ? el("p", { id: `${id}-help`, class: "muted small field-help", text: help }) : null,
        error,
      ),
      input,
      error,
    };
  };
  const url = field(
    "wh-url",
    "URL",
    el("input", { id: "wh-url", type: "url", autocomplete: "off", spellcheck: "false", placeholder: "https://hooks.example.com/calls", required: true }),
    "http or https. Each message is POSTed here, signed (Standard Webhooks).",
  );
  const checks = TYPES.map((t) =>
    el("input", { type: "checkbox", name: "types", value: t, checked: DEFAULT_TYPES.includes(t) }),
  );
  const typesError = el("p", { id: "wh-types-error", class: "field-error", role: "alert" });
  const types = el(
    "fieldset",
    { class: "statuses webhook-types", "aria-describedby": "wh-types-error" },
    el("legend", { text: "Types" }),
    checks.map((c) => el("label", { class: "check" }, c, ` ${c.value}`)),
    typesError,
  );
  const description = field(
    "wh-description",
    "Description (optional)",
    el("input", { id: "wh-description", type: "text", autocomplete: "off", maxlength: "500" }),
  );
  const filter = field(
    "wh-filter",
    "Metadata filter (optional, JSON)",
    el("textarea", { id: "wh-filter", class: "metadata-text filter-text", rows: "3", spellcheck: "false", autocomplete: "off", placeholder: '{"tenant": "acme"}' }),
    "Only calls whose metadata has each of these keys with this value (strings, numbers or booleans; at most 16). Empty: every call. Deletions reach every endpoint.",
  );
  const problem = el("p", { class: "form-error", role: "alert" });
  const submit = el("button", { type: "submit", class: "primary", text: "Create endpoint" });
  const form = el(
    "form",
    { class: "filters webhook-form", "aria-label": "New webhook endpoint", novalidate: true },
    el("div", { class: "wide" }, url.node),
    types,
    description.node,
    el("div", { class: "wide" }, filter.node),
    el("div", { class: "actions" }, submit),
    problem,
  );

  /** Where each field the service names is shown. */
  const places = {
    url: [url.error, [url.input]],
    types: [typesError, checks],
    description: [description.error, [description.input]],
    filter: [filter.error, [filter.input]],
    "filter.metadata": [filter.error, [filter.input]],
  };
  const clear = () => {
    for (const [error, inputs] of Object.values(places)) {
      error.textContent = "";
      for (const input of inputs) input.removeAttribute("aria-invalid");
    }
    problem.textContent = "";
  };
  /** Shows each `[field, message]` next to its field (others above the button); focuses the first. */
  const show = (errors) => {
    const others = [];
    let first = null;
    for (const [name, message] of errors) {
      const place = places[name];
      if (!place) {
        others.push(name ? `${name}: ${message}` : message);
        continue;
      }
      const [error, inputs] = place;
      error.textContent = error.textContent ? `${error.textContent} ${message}` : message;
      for (const input of inputs) input.setAttribute("aria-invalid", "true");
      first ??= inputs[0];
    }
    if (others.length) problem.textContent = `The service refused this endpoint: ${others.join("; ")}`;
    first?.focus();
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear();
    const body = { url: url.input.value.trim(), types: checks.filter((c) => c.checked).map((c) => c.value) };
    const errors = [];
    if (!body.url) errors.push(["url", "Enter the URL that receives the messages."]);
    if (body.types.length === 0) errors.push(["types", "Choose at least one type."]);
    const text = filter.input.value.trim();
    if (text) {
      let metadata;
      try {
        metadata = JSON.parse(text);
      } catch (error) {
        errors.push(["filter", `This is not valid JSON: ${error.message}`]);
      }
      if (metadata !== undefined && !isObject(metadata)) errors.push(["filter", 'The filter must be one JSON object, like {"tenant": "acme"}.']);
      else if (metadata !== undefined) body.filter = { metadata };
    }
    if (description.input.value.trim()) body.description = description.input.value.trim();
    if (errors.length) {
      show(errors);
      return;
    }
    submit.disabled = true;
    submit.textContent = "Creating…";
    try {
      const response = await request("/webhooks", { method: "POST", body, signal });
      const endpoint = await response.json();
      form.reset();
      onCreated(endpoint);
    } catch (error) {
      if (signal.aborted || error.name === "AbortError") return;
      if (error instanceof ApiError && error.status === 400 && Array.isArray(error.problem.errors) && error.problem.errors.length) {
        show(error.problem.errors.map((e) => [String(e.field ?? ""), String(e.message ?? "")]));
      } else if (error instanceof ApiError && error.status === 401) {
        problem.textContent = "Enter an API key (an admin key) to create an endpoint.";
      } else if (error instanceof ApiError && error.status === 403) {
        problem.textContent = "This API key may not create endpoints: webhooks need an admin key.";
      } else {
        problem.textContent = `Could not create the endpoint: ${describe(error)}`;
      }
    } finally {
      submit.disabled = false;
      submit.textContent = "Create endpoint";
    }
  });
  form.addEventListener("reset", () => {
    // reset() puts the default checks back from the `checked` attribute; the errors go too.
    setTimeout(clear);
  });
  return { form };
}

// The webhooks page (#/webhooks): the endpoints that receive the calls' changes as signed
// messages, a form for a new one (webhook-form.js; its secret is shown once, after the create),
// and per endpoint: enable or disable, send a test message, reveal or rotate its secret, send its
// messages again since a time (recover), delete it (after a confirmation), and its delivery log
// (deliveries.js), failures first. Every request needs an admin key when keys are configured.

import { ApiError, describe, getJson, request } from "./api.js";
import { deliveryLog } from "./deliveries.js";
import { definitions, el, replace, showNotice } from "./dom.js";
import { formatDateTime } from "./format.js";
import { fromLocalInput, toLocalInput } from "./list.js";
import { createForm, secretBox } from "./webhook-form.js";

const webhookPath = (id, rest = "") => `/webhooks/${encodeURIComponent(id)}${rest}`;

/** A sentence for a failed action on an endpoint. */
function actionError(what, error) {
  if (error instanceof ApiError && error.status === 401) return `Could not ${what}: enter an API key (an admin key).`;
  if (error instanceof ApiError && error.status === 403) return `Could not ${what}: this API key may not (webhooks need an admin key).`;
  if (error instanceof ApiError && error.status === 404) return `Could not ${what}: this endpoint does not exist any more.`;
  if (error instanceof ApiError && error.problem?.code === "webhook_disabled") return `Could not ${what}: this endpoint is disabled; enable it first.`;
  return `Could not ${what}: ${describe(error)}`;
}

function endpointFields(e) {
  const filter = Object.entries(e.filter?.metadata ?? {});
  return definitions([
    ["Id", el("code", { text: e.id })],
    ["Types", (e.types ?? []).join(", ")],
    ["Description", e.description ?? "—"],
    ["Metadata filter", filter.length ? filter.map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(", ") : "none (every call)"],
    ["Created", formatDateTime(e.createdAt)],
  ]);
}

/** Asks in the delete dialog, then deletes the endpoint; `done()` after the delete. */
function confirmDelete(endpoint, done) {
  const dialog = document.getElementById("webhook-delete-dialog");
  const form = document.getElementById("webhook-delete-form");
  const message = document.getElementById("webhook-delete-message");
  document.getElementById("webhook-delete-url").textContent = endpoint.url;
  message.textContent = "";
  const submit = async (event) => {
    event.preventDefault();
    try {
      await request(webhookPath(endpoint.id), { method: "DELETE" });
      dialog.close();
      done();
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        dialog.close();
        done();
        return;
      }
      message.textContent = actionError("delete the endpoint", error);
    }
  };
  form.addEventListener("submit", submit);
  document.getElementById("webhook-delete-cancel").onclick = () => dialog.close();
  dialog.addEventListener("close", () => form.removeEventListener("submit", submit), { once: true });
  dialog.showModal();
}

/** One endpoint, with its actions and its delivery log. `onDeleted()` after its delete. */
function endpointCard(initial, { signal, onDeleted }) {
  let endpoint = initial;
  const uid = `wh-${Math.random().toString(36).slice(2, 8)}`;
  const title = el("h3", { id: `${uid}-title`, class: "webhook-url" });
  const badge = el("span", { class: "badge" });
  const reason = el("p", { class: "webhook-reason" });
  const fields = el("div");
  const toggle = el("button", { type: "button", class: "webhook-toggle" });
  const test = el("button", { type: "button", text: "Send test" });
  const reveal = el("button", { type: "button", text: "Reveal secret", "aria-expanded": "false", "aria-controls": `${uid}-secret` });
  const rotate = el("button", { type: "button", text: "Rotate secret" });
  const remove = el("button", { type: "button", class: "danger", text: "Delete" });
  const said = el("p", { class: "metadata-status action-status", role: "status" });
  const problem = el("p", { class: "form-error", role: "alert" });
  const secretPlace = el("div", { id: `${uid}-secret`, class: "secret-place", hidden: true });

  const since = el("input", {
    id: `${uid}-since`,
    type: "datetime-local",
    step: "1",
    value: toLocalInput(new Date(Date.now() - 3_600_000).toISOString()),
    "aria-describedby": `${uid}-since-error`,
  });
  const sinceError = el("p", { id: `${uid}-since-error`, class: "field-error", role: "alert" });
  const recoverButton = el("button", { type: "submit", text: "Recover" });
  const recovered = el("p", { class: "metadata-status recover-status", role: "status" });
  const recoverForm = el(
    "form",
    { class: "recover-form", novalidate: true, "aria-label": "Send messages again" },
    el("label", { for: since.id, text: "Send again every delivered or failed message since (local time)" }),
    el("div", { class: "secret-row" }, since, recoverButton),
    sinceError,
    recovered,
  );

  const logDetails = el("details", { class: "log-details" }, el("summary", { text: "Delivery log" }));
  const log = deliveryLog(endpoint.id, signal, { active: () => logDetails.open });
  logDetails.append(log.node);
  logDetails.addEventListener("toggle", () => {
    if (logDetails.open) log.load();
  });
  /** Opens the log (which reads it) or, open already, reads it again. */
  const showLog = () => {
    if (logDetails.open) log.load();
    else logDetails.open = true;
  };

  const node = el(
    "article",
    { class: "webhook", "aria-labelledby": title.id, dataset: { endpointId: endpoint.id } },
    el("div", { class: "webhook-head" }, title, badge),
    reason,
    fields,
    el("div", { class: "call-actions" }, toggle, test, reveal, rotate, remove),
    said,
    problem,
    secretPlace,
    recoverForm,
    logDetails,
  );

  const update = (fresh) => {
    endpoint = fresh;
    node.dataset.enabled = String(endpoint.enabled);
    title.textContent = endpoint.url;
    badge.className = `badge status-${endpoint.enabled ? "enabled" : "disabled"}`;
    badge.textContent = endpoint.enabled ? "Enabled" : "Disabled";
    reason.textContent = !endpoint.enabled && endpoint.disabledReason ? `Disabled by the service: ${endpoint.disabledReason}.` : "";
    replace(fields, endpointFields(endpoint));
    toggle.textContent = endpoint.enabled ? "Disable" : "Enable";
  };
  update(endpoint);

  /** Runs one action: its button disabled meanwhile, its failure said under the buttons. */
  const act = (button, what, run) => async () => {
    button.disabled = true;
    problem.textContent = "";
    said.textContent = "";
    try {
      await run();
    } catch (error) {
      if (signal.aborted || error.name === "AbortError") return;
      problem.textContent = actionError(what, error);
    } finally {
      button.disabled = false;
    }
  };
  const showSecret = (secret, options) => {
    replace(secretPlace, secretBox(secret, options));
    secretPlace.hidden = false;
    reveal.textContent = "Hide secret";
    reveal.setAttribute("aria-expanded", "true");
  };
  const hideSecret = () => {
    secretPlace.replaceChildren();
    secretPlace.hidden = true;
    reveal.textContent = "Reveal secret";
    reveal.setAttribute("aria-expanded", "false");
  };

  toggle.addEventListener("click", act(toggle, "enable or disable the endpoint", async () => {
    const response = await request(webhookPath(endpoint.id), { method: "PATCH", body: { enabled: !endpoint.enabled }, signal });
    update(await response.json());
    said.textContent = endpoint.enabled
      ? "Enabled. Changes made while it was disabled were not queued for it; “Recover” sends again what it already had."
      : "Disabled: nothing is sent to it, and changes made meanwhile are not kept for it.";
  }));
  test.addEventListener("click", act(test, "send a test message", async () => {
    const { messageId } = await (await request(webhookPath(endpoint.id, "/test"), { method: "POST", signal })).json();
    said.textContent = `Test message ${messageId} queued.`;
    showLog();
  }));
  reveal.addEventListener("click", act(reveal, "read the secret", async () => {
    if (!secretPlace.hidden) {
      hideSecret();
      return;
    }
    const { secret } = await getJson(webhookPath(endpoint.id, "/secret"), { signal });
    showSecret(secret, { label: "Signing secret" });
  }));
  rotate.addEventListener("click", act(rotate, "rotate the secret", async () => {
    const { secret } = await (await request(webhookPath(endpoint.id, "/rotate-secret"), { method: "POST", signal })).json();
    showSecret(secret, {
      label: "New signing secret",
      note: "Messages are signed with the previous secret too for a while (WEBHOOK_SECRET_OVERLAP_SECONDS), so the receiver can switch without missing any.",
    });
    said.textContent = "The secret was rotated.";
  }));
  remove.addEventListener("click", () => confirmDelete(endpoint, () => onDeleted(endpoint)));

  recoverForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    sinceError.textContent = "";
    recovered.textContent = "";
    since.removeAttribute("aria-invalid");
    const value = fromLocalInput(since.value);
    if (!value) {
      sinceError.textContent = value === null ? "This is not a valid date and time." : "Choose a date and time.";
      since.setAttribute("aria-invalid", "true");
      since.focus();
      return;
    }
    recoverButton.disabled = true;
    try {
      const response = await request(webhookPath(endpoint.id, "/recover"), { method: "POST", body: { since: value }, signal });
      const { requeued } = await response.json();
      recovered.textContent =
        requeued === 0
          ? "No delivered or failed message since then: nothing was queued again."
          : `${requeued} message${requeued === 1 ? "" : "s"} queued again.`;
      showLog();
    } catch (error) {
      if (signal.aborted || error.name === "AbortError") return;
      const errors = error instanceof ApiError && error.status === 400 && Array.isArray(error.problem.errors) ? error.problem.errors : [];
      sinceError.textContent = errors.length ? errors.map((e) => e.message).join(" ") : actionError("queue the messages again", error);
      if (errors.length) since.setAttribute("aria-invalid", "true");
    } finally {
      recoverButton.disabled = false;
    }
  });

  return { node, update };
}

/** Renders the webhooks page into `main`. */
export function renderWebhooks(main, signal) {
  const list = el("div", { class: "webhooks" });
  const status = el("p", { class: "list-status", role: "alert" });
  const count = el("p", { class: "page-label", role: "status" });
  const created = el("section", { class: "created-secret", "aria-label": "New endpoint's secret", hidden: true });
  const cards = new Map(); // endpoint id → card
  const heading = el("h2", { text: "Endpoints", tabindex: "-1" });

  const showCount = () => {
    const n = cards.size;
    count.textContent = n === 0 ? "No endpoints yet." : `${n} endpoint${n === 1 ? "" : "s"}`;
  };
  const add = (endpoint) => {
    const card = endpointCard(endpoint, {
      signal,
      onDeleted: (gone) => {
        card.node.remove();
        cards.delete(gone.id);
        if (created.dataset.endpointId === gone.id) created.hidden = true;
        showCount();
        showNotice(`The endpoint ${gone.url} was deleted.`, "info");
        heading.focus(); // its Delete button, which had the focus, went with it
      },
    });
    cards.set(endpoint.id, card);
    list.append(card.node);
    return card;
  };

  const load = async () => {
    try {
      const { webhooks } = await getJson("/webhooks", { signal });
      const ids = new Set(webhooks.map((w) => w.id));
      for (const [id, card] of cards) {
        if (!ids.has(id)) {
          card.node.remove();
          cards.delete(id);
        }
      }
      // Oldest first, as the service lists them; the cards already shown keep their log.
      for (const endpoint of webhooks) {
        const card = cards.get(endpoint.id);
        if (card) {
          card.update(endpoint);
          list.append(card.node);
        } else add(endpoint);
      }
      status.textContent = "";
      showCount();
    } catch (error) {
      if (signal.aborted || error.name === "AbortError") return;
      if (error instanceof ApiError && error.status === 401) status.textContent = "Enter an API key (an admin key) to see the webhook endpoints.";
      else if (error instanceof ApiError && error.status === 403) status.textContent = "This API key may not manage webhooks: they need an admin key.";
      else status.textContent = `Could not read the webhook endpoints: ${describe(error)}`;
    }
  };

  const { form } = createForm({
    signal,
    onCreated: (endpoint) => {
      const { secret, ...shown } = endpoint;
      add(shown);
      showCount();
      created.dataset.endpointId = endpoint.id;
      replace(
        created,
        el("h2", { text: "Endpoint created" }),
        secretBox(secret ?? "", {
          label: `Signing secret of ${endpoint.url}`,
          note: "Copy it now into the receiver's configuration: it verifies each message's webhook-signature. “Reveal secret” on the endpoint shows it again.",
        }),
        el("button", { type: "button", class: "quiet", text: "Done", onclick: () => { created.hidden = true; created.replaceChildren(); } }),
      );
      created.hidden = false;
      created.querySelector("input")?.focus();
    },
  });

  replace(
    main,
    el("h1", { text: "Webhooks" }),
    el("p", { class: "muted", text: "Endpoints that receive the calls' changes as signed messages (Standard Webhooks). Managing them needs an admin key." }),
    el("h2", { text: "New endpoint" }),
    form,
    created,
    heading,
    el("div", { class: "list-bar" }, count, el("button", { type: "button", class: "quiet", text: "Refresh", onclick: () => load() })),
    status,
    list,
  );
  load();
}

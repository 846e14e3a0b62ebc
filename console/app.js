// The console's entry point: the hash router, the API key dialog, and the header's key controls
// and section links. The addresses:
//   #/                       the overview, the start page (#/overview?range=… a chosen range: overview.js)
//   #/calls, #/calls?…       the calls list, with its filters
//   #/?status=…&from=…       the list's address before the overview: still opens the list, and is
//                            rewritten to #/calls?… (the overview's own query lives at #/overview)
//   #/calls/ID[?seq=N]       one call (at one event)
//   #/search?q=…             the search
//   #/webhooks               the webhook endpoints and their delivery logs (an admin key's)

import { apiKey, forgetApiKey, onAuthProblem, setApiKey } from "./api.js";
import { renderCall } from "./call.js";
import { clearNotice, el, showNotice, showPendingNotice } from "./dom.js";
import { listHash, renderList } from "./list.js";
import { overviewHash, renderOverview } from "./overview.js";
import { renderSearch, searchHash } from "./search.js";
import { renderWebhooks } from "./webhooks.js";

const main = document.getElementById("main");
const keyDialog = document.getElementById("key-dialog");
const keyForm = document.getElementById("key-form");
const keyInput = document.getElementById("key-input");
const keyMessage = document.getElementById("key-message");
const keyState = document.getElementById("key-state");
const keyChange = document.getElementById("key-change");
const keyForget = document.getElementById("key-forget");
const navOverview = document.getElementById("nav-overview");
const navCalls = document.getElementById("nav-calls");
const navSearch = document.getElementById("nav-search");
const navWebhooks = document.getElementById("nav-webhooks");

let view = null;

/** Shows the view the hash names, ending the previous one (its timers and streams). */
function route({ focus = false } = {}) {
  view?.abort();
  view = new AbortController();
  let hash = location.hash || "#/";
  if (hash.startsWith("#/?") && hash.length > 3) {
    hash = `#/calls?${hash.slice(3)}`;
    history.replaceState(history.state, "", hash);
  }
  const call = /^#\/calls\/([^?#]+)(?:\?([^#]*))?$/.exec(hash);
  let sessionId = null;
  if (call) {
    try {
      sessionId = decodeURIComponent(call[1]);
    } catch {
      sessionId = null;
    }
  }
  const search = hash === "#/search" || hash.startsWith("#/search?");
  const list = hash === "#/calls" || hash.startsWith("#/calls?");
  const webhooks = hash === "#/webhooks" || hash.startsWith("#/webhooks?");
  const overview = sessionId === null && !search && !list && !webhooks;
  if (sessionId !== null) {
    document.title = `${sessionId} · session-service console`;
    const seq = Number(new URLSearchParams(call[2] ?? "").get("seq") ?? "");
    renderCall(main, sessionId, view.signal, { seq: Number.isSafeInteger(seq) && seq >= 1 ? seq : null });
  } else if (search) {
    document.title = "Search · session-service console";
    renderSearch(main, new URLSearchParams(hash.slice("#/search?".length)), view.signal);
  } else if (webhooks) {
    document.title = "Webhooks · session-service console";
    renderWebhooks(main, view.signal);
  } else if (list) {
    document.title = "Calls · session-service console";
    renderList(main, new URLSearchParams(hash.slice("#/calls?".length)), view.signal);
  } else {
    // #/, #/overview?…, and any address this console does not know.
    document.title = "Overview · session-service console";
    const query = hash.startsWith("#/overview?") ? hash.slice("#/overview?".length) : "";
    renderOverview(main, new URLSearchParams(query), view.signal);
  }
  // The section links go back to each section as it was left (its range, filters, query).
  navOverview.href = overviewHash();
  navCalls.href = listHash();
  navSearch.href = searchHash() ?? "#/search";
  for (const [link, here] of [[navOverview, overview], [navCalls, list], [navSearch, search], [navWebhooks, webhooks]]) {
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  showKeyState();
  if (focus) main.focus({ preventScroll: true });
}

function showKeyState() {
  const has = apiKey() !== null;
  keyState.textContent = has ? "API key: entered" : "";
  keyChange.hidden = !has;
  keyForget.hidden = !has;
}

/** Opens the key dialog with `message` (a dialog already open keeps the stronger message). */
function askForKey(message) {
  keyMessage.textContent = message;
  if (!keyDialog.open) {
    keyInput.value = "";
    keyDialog.showModal();
  }
}

onAuthProblem((error, sentKey) => {
  const detail = error.problem?.detail ? ` ${error.problem.detail}` : "";
  if (error.status === 403) {
    showNotice(
      `Your API key may not do this (403 forbidden).${detail}`,
      "error",
      el("button", { type: "button", text: "Use another key", onclick: () => askForKey("Enter a key with a wider scope.") }),
    );
  } else if (sentKey) {
    askForKey(`The service refused this key (401 unauthorized): it is not one of its API keys. Check it and try again.`);
  } else if (!keyDialog.open || keyMessage.dataset.kind !== "refused") {
    askForKey("This service needs an API key. Enter one to continue.");
  }
  keyMessage.dataset.kind = sentKey ? "refused" : "needed";
});

keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  if (!key) {
    keyMessage.textContent = "Enter a key.";
    return;
  }
  setApiKey(key);
  keyInput.value = "";
  keyDialog.close();
  clearNotice();
  route();
});
document.getElementById("key-cancel").addEventListener("click", () => keyDialog.close());
keyChange.addEventListener("click", () => askForKey("Enter the key to use from now on."));
keyForget.addEventListener("click", () => {
  forgetApiKey();
  route();
});

window.addEventListener("hashchange", () => {
  clearNotice();
  route({ focus: true });
  showPendingNotice();
});
route();

// "Token manager": every user's tokens for a system administrator, through the
// same token API (tokensByFilter, deleteAllFor, create with tokenForUserKey).
import {
  accessCell, addressError, api, call, clearAddressError, clearMessages, confirmWith, createBody,
  el, expiryNote, expiryOptions, fail, lastUsedCell, page, policyBody, say, showNewToken,
  tokenDetails, userKey, when, wireNewToken,
} from "./common.js";

const PAGE_SIZE = 20;
const table = document.getElementById("tokens");
const empty = document.getElementById("empty");
const names = new Map(); // user key -> user name, as the upstream says
let filter = { userKey: null, description: null, notValidAfter: -1 };
let current = 0;

async function nameOf(key) {
  if (!names.has(key)) {
    names.set(key, call("GET", `${page.userApi}?key=${encodeURIComponent(key)}`)
      .then((user) => user.name || user.username || key)
      .catch(() => key));
  }
  return names.get(key);
}

async function load(pageNumber) {
  const query = new URLSearchParams({
    notValidAfter: String(filter.notValidAfter), page: String(pageNumber), limit: String(PAGE_SIZE),
    expand: "lastAccessedFrom",
  });
  if (filter.userKey) query.set("userKey", filter.userKey);
  if (filter.description) query.set("description", filter.description);
  const result = await api("GET", `/user/tokensByFilter?${query}`);
  const owners = await Promise.all(result.content.map((t) => nameOf(t.tokenForUserKey)));
  table.tBodies[0].replaceChildren(...result.content.map((t, i) => row(t, owners[i])));
  table.hidden = result.content.length === 0;
  empty.hidden = result.content.length !== 0;
  current = result.currentPage;
  const pages = Math.max(result.totalPages, 1);
  document.getElementById("page-info").textContent =
    `Page ${Math.min(current + 1, pages)} of ${pages} · ${result.total} ${result.total === 1 ? "token" : "tokens"}`;
  document.getElementById("previous-page").disabled = current <= 0;
  document.getElementById("next-page").disabled = current + 1 >= result.totalPages;
}

function row(token, owner) {
  return el("tr", { "data-token-id": token.id },
    el("td", { "data-label": "User", title: token.tokenForUserKey, text: owner }),
    el("td", { "data-label": "Description", class: "description", text: token.description }),
    accessCell(token),
    el("td", { "data-label": "Created" }, when(token.created, "—")),
    el("td", { "data-label": "Expires" }, when(token.validUntil, "Never")),
    lastUsedCell(token),
    el("td", { class: "row-actions" },
      el("button", {
        type: "button", class: "button subtle danger-text", text: "Revoke",
        "aria-label": `Revoke ${token.description} of ${owner}`, onclick: () => revoke(token, owner),
      })));
}

async function revoke(token, owner) {
  tokenDetails(document.getElementById("revoke-details"), token, owner);
  const dialog = document.getElementById("revoke-dialog");
  if (!(await confirmWith(dialog, document.getElementById("revoke-cancel")))) return;
  try {
    await api("DELETE", `/user/token/${token.id}`);
    await load(current);
    say(`Revoked “${token.description}” of ${owner}.`);
  } catch (error) {
    fail(error);
  }
}

function endOfDay(dateText) {
  // "Expires before" a date: up to the end of the day before it, local time.
  const [year, month, day] = dateText.split("-").map(Number);
  return new Date(year, month - 1, day).getTime() - 1;
}

const filterForm = document.getElementById("filter-form");
filterForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearMessages();
  try {
    const user = document.getElementById("filter-user").value.trim();
    const description = document.getElementById("filter-description").value.trim();
    const expires = document.getElementById("filter-expires").value;
    filter = {
      userKey: user ? await userKey(user) : null,
      description: description || null,
      notValidAfter: expires ? endOfDay(expires) : -1,
    };
    await load(0);
  } catch (error) {
    fail(error);
  }
});
filterForm.addEventListener("reset", () => {
  filter = { userKey: null, description: null, notValidAfter: -1 };
  load(0).catch(fail);
});
document.getElementById("previous-page").addEventListener("click", () => load(current - 1).catch(fail));
document.getElementById("next-page").addEventListener("click", () => load(current + 1).catch(fail));

document.getElementById("for-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearMessages();
  const form = event.target;
  const name = document.getElementById("for-user").value.trim();
  const description = document.getElementById("for-description");
  const addresses = document.getElementById("for-addresses");
  const problem = document.getElementById("for-addresses-error");
  clearAddressError(addresses, problem);
  try {
    const key = await userKey(name);
    const body = {
      ...createBody(description.value, document.getElementById("for-months")),
      ...policyBody(form.elements.scope.value, addresses.value),
      tokenForUserKey: key,
    };
    const created = await api("POST", "/user/token", body);
    showNewToken(name, created.plainTextToken, expiryNote(created));
    description.value = "";
    addresses.value = "";
    await load(current);
  } catch (error) {
    if (!addressError(error, addresses, problem)) fail(error);
  }
});

document.getElementById("all-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearMessages();
  const name = document.getElementById("all-user").value.trim();
  try {
    const key = await userKey(name);
    const query = new URLSearchParams({ notValidAfter: "-1", limit: "1", userKey: key });
    const { total } = await api("GET", `/user/tokensByFilter?${query}`);
    document.getElementById("all-dialog-user").textContent = name;
    document.getElementById("all-dialog-count").textContent =
      `${name} has ${total} ${total === 1 ? "token" : "tokens"}.`;
    const dialog = document.getElementById("all-dialog");
    if (!(await confirmWith(dialog, document.getElementById("all-cancel")))) return;
    const { deletedTokens } = await api("DELETE", `/user/token/deleteAllFor/${encodeURIComponent(key)}`);
    await load(0);
    say(`Revoked ${deletedTokens} ${deletedTokens === 1 ? "token" : "tokens"} of ${name}.`);
  } catch (error) {
    fail(error);
  }
});

expiryOptions(document.getElementById("for-months"));
wireNewToken();
load(0).catch(fail);

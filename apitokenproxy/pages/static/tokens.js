// "My API tokens": the signed-in user's own tokens, through the token API.
import {
  api, clearMessages, confirmWith, createBody, el, expiryOptions, fail, page, say,
  showNewToken, tokenDetails, when, wireNewToken,
} from "./common.js";

const table = document.getElementById("tokens");
const empty = document.getElementById("empty");

async function load() {
  const tokens = await api("GET", "/user/token");
  tokens.sort((a, b) => b.created - a.created || b.id - a.id);
  const body = table.tBodies[0];
  body.replaceChildren(...tokens.map(row));
  table.hidden = tokens.length === 0;
  empty.hidden = tokens.length !== 0;
}

function row(token) {
  const label = token.description;
  return el("tr", { "data-token-id": token.id },
    el("td", { "data-label": "Description", class: "description", text: token.description }),
    el("td", { "data-label": "Created" }, when(token.created, "—")),
    el("td", { "data-label": "Expires" }, when(token.validUntil, "Never")),
    el("td", { "data-label": "Last used" }, when(token.lastAccessed, "Never used")),
    el("td", { class: "row-actions" },
      el("button", {
        type: "button", class: "button subtle", text: "Rename",
        "aria-label": `Rename ${label}`, onclick: () => rename(token),
      }),
      el("button", {
        type: "button", class: "button subtle danger-text", text: "Revoke",
        "aria-label": `Revoke ${label}`, onclick: () => revoke(token),
      })));
}

async function rename(token) {
  const dialog = document.getElementById("rename-dialog");
  const input = document.getElementById("rename-input");
  input.value = token.description;
  if (!(await confirmWith(dialog, document.getElementById("rename-cancel")))) return;
  try {
    await api("PATCH", `/user/token/${token.id}`, { tokenDescription: input.value });
    await load();
    say(`Renamed to “${input.value}”.`);
  } catch (error) {
    fail(error);
  }
}

async function revoke(token) {
  tokenDetails(document.getElementById("revoke-details"), token);
  const dialog = document.getElementById("revoke-dialog");
  if (!(await confirmWith(dialog, document.getElementById("revoke-cancel")))) return;
  try {
    await api("DELETE", `/user/token/${token.id}`);
    await load();
    say(`Revoked “${token.description}”.`);
  } catch (error) {
    fail(error);
  }
}

document.getElementById("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearMessages();
  const description = document.getElementById("description");
  const button = document.getElementById("create-button");
  button.disabled = true;
  try {
    const created = await api(
      "POST", "/user/token", createBody(description.value, document.getElementById("months")));
    showNewToken(page.user, created.plainTextToken);
    description.value = "";
    await load();
  } catch (error) {
    fail(error);
  } finally {
    button.disabled = false;
  }
});

expiryOptions(document.getElementById("months"));
wireNewToken();
load().catch(fail);

// "My API tokens": the signed-in user's own tokens, through the token API.
import {
  accessCell, addressError, addressesOf, api, clearAddressError, clearMessages, confirmWith,
  createBody, el, expiryNote, expiryOptions, fail, graceOptions, lastUsedCell, moment, page,
  policyBody, say, scopeOf, showNewToken, tokenDetails, when, wireNewToken,
} from "./common.js";

const table = document.getElementById("tokens");
const empty = document.getElementById("empty");
const byId = (id) => document.getElementById(id);

async function load() {
  // The addresses of last uses are an expansion: a seed client never sees them.
  const tokens = await api("GET", "/user/token?expand=lastAccessedFrom");
  tokens.sort((a, b) => b.created - a.created || b.id - a.id);
  const body = table.tBodies[0];
  body.replaceChildren(...tokens.map(row));
  table.hidden = tokens.length === 0;
  empty.hidden = tokens.length !== 0;
}

function action(text, label, onclick, extra = "") {
  return el("button", {
    type: "button", class: `button subtle ${extra}`.trim(), text, "aria-label": label, onclick,
  });
}

function row(token) {
  const label = token.description;
  const actions = [
    action("Edit", `Edit ${label}`, () => edit(token)),
    scopeOf(token) === "write"
      ? action("Make read-only", `Make ${label} read-only`, () => narrow(token)) : null,
    action("Rotate", `Rotate ${label}`, () => rotate(token)),
    action("Revoke", `Revoke ${label}`, () => revoke(token), "danger-text"),
  ].filter(Boolean);
  return el("tr", { "data-token-id": token.id },
    el("td", { "data-label": "Description", class: "description", text: token.description }),
    accessCell(token),
    el("td", { "data-label": "Created" }, when(token.created, "—")),
    el("td", { "data-label": "Expires" }, when(token.validUntil, "Never")),
    lastUsedCell(token),
    el("td", { class: "row-actions" }, ...actions));
}

function sameList(a, b) {
  return a.length === b.length && a.every((item, i) => item === b[i]);
}

async function edit(token) {
  const dialog = byId("edit-dialog");
  const description = byId("edit-description");
  const addresses = byId("edit-addresses");
  const problem = byId("edit-addresses-error");
  description.value = token.description;
  addresses.value = addressesOf(token).join("\n");
  clearAddressError(addresses, problem);
  addresses.autofocus = false;
  // A refused address keeps the dialog open, with the server's reason beside the field.
  for (;;) {
    if (!(await confirmWith(dialog, byId("edit-cancel")))) return;
    const body = { tokenDescription: description.value };
    const wanted = policyBody("write", addresses.value).allowedAddresses || [];
    if (!sameList(wanted, addressesOf(token))) body.allowedAddresses = wanted;
    try {
      await api("PATCH", `/user/token/${token.id}`, body);
      await load();
      say(`Saved “${description.value}”.`);
      return;
    } catch (error) {
      if (!addressError(error, addresses, problem)) {
        fail(error);
        return;
      }
      addresses.autofocus = true; // the dialog opens again on the field to correct

    }
  }
}

async function narrow(token) {
  tokenDetails(byId("narrow-details"), token);
  if (!(await confirmWith(byId("narrow-dialog"), byId("narrow-cancel")))) return;
  try {
    await api("PATCH", `/user/token/${token.id}`, { scope: "read" });
    await load();
    say(`“${token.description}” is now read-only.`);
  } catch (error) {
    fail(error);
  }
}

async function rotate(token) {
  tokenDetails(byId("rotate-details"), token);
  const grace = byId("rotate-grace");
  if (!(await confirmWith(byId("rotate-dialog"), byId("rotate-cancel")))) return;
  try {
    const rotated = await api(
      "POST", `/user/token/${token.id}/rotate`, { gracePeriodSeconds: Number(grace.value) });
    const previous = rotated.previousTokenValidUntil;
    showNewToken(page.user, rotated.plainTextToken, previous
      ? `The old secret keeps working until ${moment(previous)}; after that only this one does.`
      : "The old secret has stopped working: only this one works now.");
    await load();
  } catch (error) {
    fail(error);
  }
}

async function revoke(token) {
  tokenDetails(byId("revoke-details"), token);
  if (!(await confirmWith(byId("revoke-dialog"), byId("revoke-cancel")))) return;
  try {
    await api("DELETE", `/user/token/${token.id}`);
    await load();
    say(`Revoked “${token.description}”.`);
  } catch (error) {
    fail(error);
  }
}

byId("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearMessages();
  const form = event.target;
  const description = byId("description");
  const addresses = byId("addresses");
  const problem = byId("addresses-error");
  const button = byId("create-button");
  clearAddressError(addresses, problem);
  button.disabled = true;
  try {
    const body = {
      ...createBody(description.value, byId("months")),
      ...policyBody(form.elements.scope.value, addresses.value),
    };
    const created = await api("POST", "/user/token", body);
    showNewToken(page.user, created.plainTextToken, expiryNote(created));
    form.reset();
    await load();
  } catch (error) {
    if (!addressError(error, addresses, problem)) fail(error);
  } finally {
    button.disabled = false;
  }
});

expiryOptions(byId("months"));
graceOptions(byId("rotate-grace"));
wireNewToken();
load().catch(fail);

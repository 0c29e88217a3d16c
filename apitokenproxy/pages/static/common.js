// What both pages share: calling the token API as curl does, building elements
// (text only: every value goes through textContent, never innerHTML), dates a
// person reads, a token's policy (scope, allowed addresses) in words and in the
// request body, the one-time display of a new token, and confirmation dialogs.

export const page = document.body.dataset;

export async function api(method, path, body) {
  return call(method, page.api + path, body);
}

// Any same-origin REST call, signed in by the session cookie. State-changing
// calls carry X-Atlassian-Token: no-check, as Jira's own pages do.
export async function call(method, url, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-Atlassian-Token"] = "no-check";
  const options = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  if (response.status === 401) {
    window.location.assign(page.login);
    throw new Error("Your session has ended; taking you to the login page.");
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error(messageOf(data) || `The server answered HTTP ${response.status}.`);
    error.status = response.status;
    throw error;
  }
  return data;
}

function messageOf(data) {
  if (!data) return "";
  if (typeof data.message === "string") return data.message;
  if (Array.isArray(data.errorMessages) && data.errorMessages.length) return data.errorMessages.join(" ");
  return "";
}

// The user key for a user name, from the upstream's own REST API.
export async function userKey(name) {
  try {
    const user = await call("GET", `${page.userApi}?username=${encodeURIComponent(name)}`);
    const key = user && user[page.keyField];
    if (typeof key === "string" && key) return key;
  } catch (error) {
    if (error.status !== 404) throw error;
  }
  throw new Error(`No user is named “${name}”.`);
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "onclick") node.addEventListener("click", value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) node.append(child);
  return node;
}

const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const exactFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: "full", timeStyle: "long",
});

// A date a person reads, with the exact time on hover (and for screen readers
// through the datetime attribute).
export function when(ms, otherwise) {
  if (!ms) return el("span", { class: "muted", text: otherwise });
  const date = new Date(ms);
  return el("time", {
    datetime: date.toISOString(), title: exactFormat.format(date), text: dayFormat.format(date),
  });
}

const momentFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium", timeStyle: "long",
});

// A moment to the second, for "the old secret works until ...".
export function moment(ms) {
  return momentFormat.format(new Date(ms));
}

// What the server granted, which per-group limits may have capped below the choice.
export function expiryNote(token) {
  return token.validUntil ? `It expires on ${dayFormat.format(new Date(token.validUntil))}.`
    : "It never expires.";
}

export function expiryOptions(select) {
  const choices = page.months.split(",").filter(Boolean).map(Number);
  const chosen = Number(page.defaultMonths);
  for (const months of choices) {
    const label = months === 0 ? "Never" : months === 1 ? "1 month" : `${months} months`;
    select.append(el("option", { value: months, selected: months === chosen, text: label }));
  }
}

export function createBody(description, select) {
  const months = Number(select.value);
  const body = { tokenDescription: description };
  // "Never" is the default's absence; any other choice is asked for explicitly.
  if (months > 0) body.tokenValidityTimeInMonths = months;
  return body;
}

// "10.0.0.0/8, 192.168.1.7\n2001:db8::/32" -> the list the API takes; the
// server checks each entry and names a bad one.
export function addressList(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

// The policy fields of a create request, only where they differ from the
// defaults (write, from anywhere), so a plain token is asked for exactly as
// the seed's API is.
export function policyBody(scope, addressText) {
  const body = {};
  if (scope === "read") body.scope = "read";
  const addresses = addressList(addressText);
  if (addresses.length) body.allowedAddresses = addresses;
  return body;
}

// A listed token without these fields is write, from anywhere (the API adds
// them only for a token that differs).
export const scopeOf = (token) => token.scope || "write";
export const addressesOf = (token) => token.allowedAddresses || [];

export function scopeText(token) {
  return scopeOf(token) === "read" ? "Read only" : "Read and write";
}

export function addressesText(token) {
  const addresses = addressesOf(token);
  return addresses.length ? `from ${addresses.join(", ")}` : "from anywhere";
}

// The list's "Access" cell: the scope as a badge, then where it may be used from.
export function accessCell(token) {
  const read = scopeOf(token) === "read";
  return el("td", { "data-label": "Access", class: "access" },
    el("div", { class: "access-value" },
      el("span", { class: read ? "badge badge-read" : "badge", text: scopeText(token) }),
      el("span", { class: "addresses", text: addressesText(token) })));
}

// "Last used": when, and from where if the store records it (lastAccessedFrom).
export function lastUsedCell(token) {
  const cell = el("td", { "data-label": "Last used" }, when(token.lastAccessed, "Never used"));
  if (token.lastAccessed && typeof token.lastAccessedFrom === "string" && token.lastAccessedFrom) {
    cell.append(el("span", { class: "from", text: ` from ${token.lastAccessedFrom}` }));
  }
  return cell;
}

// A server's refusal of allowedAddresses goes next to the field that caused
// it; anything else is the page's. Returns whether it was the field's.
export function addressError(error, field, message) {
  const text = error instanceof Error ? error.message : String(error);
  if (!text.startsWith("allowedAddresses")) return false;
  // "allowedAddresses: 'x' is not an IP network": the field is the one beside it.
  message.textContent = text.replace(/^allowedAddresses: /, "");
  message.hidden = false;
  field.setAttribute("aria-invalid", "true");
  field.focus();
  return true;
}

export function clearAddressError(field, message) {
  message.textContent = "";
  message.hidden = true;
  field.removeAttribute("aria-invalid");
}

export function graceLabel(seconds) {
  if (seconds === 0) return "No time: it stops at once";
  const units = [[7 * 86400, "week"], [86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]];
  for (const [size, unit] of units) {
    if (seconds % size === 0) {
      const n = seconds / size;
      return `${n} ${unit}${n === 1 ? "" : "s"}`;
    }
  }
  return `${seconds} seconds`;
}

export function graceOptions(select) {
  const choices = page.graces.split(",").filter(Boolean).map(Number);
  const chosen = Number(page.defaultGrace);
  for (const seconds of choices) {
    select.append(el("option", { value: seconds, selected: seconds === chosen, text: graceLabel(seconds) }));
  }
}

const messages = () => document.getElementById("messages");
const errors = () => document.getElementById("errors");

export function say(text) {
  errors().hidden = true;
  messages().textContent = text;
}

export function fail(error) {
  const box = errors();
  box.textContent = error instanceof Error ? error.message : String(error);
  box.hidden = false;
}

export function clearMessages() {
  messages().textContent = "";
  errors().hidden = true;
}

// The one-time display of a secret, with a sentence on what the server
// granted (its validUntil, or for a rotation how long the old secret lives).
export function showNewToken(ownerName, plainText, note = "") {
  const section = document.getElementById("new-token");
  const noteLine = document.getElementById("new-token-note");
  noteLine.textContent = note;
  noteLine.hidden = !note;
  document.getElementById("new-token-value").value = plainText;
  const owner = document.getElementById("new-token-owner");
  if (owner) owner.textContent = ownerName;
  document.getElementById("curl-line").textContent =
    `curl -u ${ownerName}:${plainText} ${page.site}${page.myself}`;
  section.hidden = false;
  section.focus();
}

export function wireNewToken() {
  const copy = document.getElementById("copy-token");
  copy.addEventListener("click", async () => {
    const input = document.getElementById("new-token-value");
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      // Older browsers, or a page not served over HTTPS: select it for Ctrl+C.
      input.select();
      document.execCommand("copy");
    }
    copy.textContent = "Copied";
    say("The token is copied to the clipboard.");
  });
  document.getElementById("dismiss-token").addEventListener("click", () => {
    const section = document.getElementById("new-token");
    document.getElementById("new-token-value").value = "";
    document.getElementById("curl-line").textContent = "";
    copy.textContent = "Copy";
    section.hidden = true;
  });
}

// Opens a <dialog> and resolves true when its form is submitted, false when
// cancelled (button or Escape). Native dialogs keep focus inside and return it.
export function confirmWith(dialog, cancelButton) {
  return new Promise((resolve) => {
    const form = dialog.querySelector("form");
    const done = (answer) => {
      form.removeEventListener("submit", onSubmit);
      cancelButton.removeEventListener("click", onCancel);
      dialog.removeEventListener("close", onClose);
      resolve(answer);
    };
    const onSubmit = () => done(true);
    const onCancel = () => { dialog.close(); };
    const onClose = () => done(dialog.returnValue !== "" && dialog.returnValue !== "cancel");
    form.addEventListener("submit", onSubmit);
    cancelButton.addEventListener("click", onCancel);
    dialog.addEventListener("close", onClose);
    dialog.returnValue = "";
    dialog.showModal();
  });
}

export function tokenDetails(list, token, owner) {
  list.replaceChildren();
  const rows = [
    ["Description", document.createTextNode(token.description)],
    ...(owner ? [["User", document.createTextNode(owner)]] : []),
    ["Token id", document.createTextNode(String(token.id))],
    ["Created", when(token.created, "—")],
    ["Expires", when(token.validUntil, "Never")],
    ["Last used", when(token.lastAccessed, "Never used")],
    ["Access", document.createTextNode(`${scopeText(token)}, ${addressesText(token)}`)],
  ];
  for (const [term, value] of rows) list.append(el("dt", { text: term }), el("dd", {}, value));
}

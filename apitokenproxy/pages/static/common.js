// What both pages share: calling the token API as curl does, building elements
// (text only: every value goes through textContent, never innerHTML), dates a
// person reads, the one-time display of a new token, and confirmation dialogs.

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

export function showNewToken(ownerName, plainText) {
  const section = document.getElementById("new-token");
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
  ];
  for (const [term, value] of rows) list.append(el("dt", { text: term }), el("dd", {}, value));
}

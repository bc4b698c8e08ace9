// The console: sign-in, then one view at a time chosen by the address's fragment (#/cameras,
// #/cameras/<id>, #/events, #/events/<event_id>, #/people, #/audit). Each view is a module with
// enter(arg) / leave() / render(); render() rebuilds the view from its state, so the language switch
// simply re-renders. The status line under the bar always says what the page is waiting for.
//
// What the signed-in role may not use is hidden (the server refuses it anyway): viewers see cameras,
// events and people; supervisors also the audit log and legal holds; installers everything.

import * as api from "./api.js";
import * as audit from "./audit.js";
import * as cameras from "./cameras.js";
import { $ } from "./dom.js";
import * as editor from "./editor.js";
import * as events from "./events.js";
import * as i18n from "./i18n.js";
import * as people from "./people.js";

const { t, describe } = i18n;
const LANG_KEY = "vigil.console.lang";

const app = {
  session: null,
  view: null,
  module: null,
  waitingFor: ["wait_opening", {}],

  // The status line: what the page waits for now.
  waiting(key, vars = {}) {
    app.waitingFor = [key, vars];
    $("status").textContent = t(key, vars);
    $("status").classList.remove("bad");
  },
  // An error in the status line (the view keeps what it shows).
  failed(error) {
    app.waitingFor = ["error_line", { message: describe(error) }];
    $("status").textContent = t("error_line", { message: describe(error) });
    $("status").classList.add("bad");
  },
  can(...roles) {
    return !!app.session && roles.includes(app.session.role);
  },
  go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
};

const VIEWS = {
  cameras: { module: cameras, section: "cameras" },
  camera: { module: editor, section: "editor" },
  events: { module: events, section: "events" },
  event: { module: events.evidenceView, section: "evidence" },
  people: { module: people, section: "people" },
  audit: { module: audit, section: "audit", roles: ["installer", "supervisor"] },
};

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const [first, second] = parts;
  if (first === "cameras" && second) return ["camera", second];
  if (first === "events" && second) return ["event", second];
  if (first in VIEWS && first !== "camera" && first !== "event") return [first, null];
  return ["cameras", null];
}

function show(section) {
  for (const element of document.querySelectorAll("main > section.view")) {
    element.hidden = element.id !== `view-${section}`;
  }
  document.body.dataset.view = section;
}

async function route() {
  if (!app.session || app.session.must_change_password) return;
  let [name, arg] = parseHash();
  const view = VIEWS[name];
  if (view.roles && !app.can(...view.roles)) {
    name = "cameras";
    arg = null;
    history.replaceState(null, "", "#/cameras");
  }
  if (app.module && app.module.leave) app.module.leave();
  app.view = name;
  app.module = VIEWS[name].module;
  for (const link of document.querySelectorAll("#nav a")) {
    const current = link.dataset.nav === name || (link.dataset.nav === "cameras" && name === "camera") || (link.dataset.nav === "events" && name === "event");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  show(VIEWS[name].section);
  try {
    await app.module.enter(app, arg);
  } catch (error) {
    app.failed(error);
  }
  const title = document.querySelector(`#view-${VIEWS[name].section} h2`);
  if (title) {
    title.tabIndex = -1;
    title.focus({ preventScroll: true });
  }
}

// --- the bar, the language --------------------------------------------------------------------

function renderStatic() {
  document.title = t("title");
  for (const element of document.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  const lang = $("lang");
  lang.textContent = t("lang_switch");
  lang.setAttribute("aria-label", t("lang_switch_label"));
  const s = app.session;
  $("who").textContent = s ? t("who", { name: s.name, role: t(`role.${s.role}`) }) : "";
  $("nav").hidden = !s;
  $("signout").hidden = !s;
  for (const element of document.querySelectorAll("[data-roles]")) {
    element.hidden = !s || !element.dataset.roles.split(" ").includes(s.role);
  }
}

function renderAll() {
  renderStatic();
  const [key, vars] = app.waitingFor;
  $("status").textContent = t(key, vars);
  if (app.session && app.module && app.module.render) app.module.render();
}

function switchLanguage() {
  const next = i18n.language() === "en" ? "zh-CN" : "en";
  i18n.setLanguage(next);
  try {
    localStorage.setItem(LANG_KEY, next);
  } catch {
    // private mode: the choice lasts for this page only
  }
  renderAll();
}

// --- sign-in ----------------------------------------------------------------------------------

function showSignin(reason) {
  if (app.module && app.module.leave) app.module.leave();
  app.session = null;
  app.module = null;
  app.view = "signin";
  api.setCsrf(null);
  renderStatic();
  show("signin");
  const error = $("signin-error");
  error.hidden = !reason;
  if (reason) error.textContent = reason;
  app.waiting("wait_signin");
  $("signin-name").focus();
}

async function signIn(event) {
  event.preventDefault();
  const name = $("signin-name").value.trim();
  const password = $("signin-password").value;
  const error = $("signin-error");
  if (!name || !password) {
    error.hidden = false;
    error.textContent = t("signin_missing");
    return;
  }
  $("signin-submit").disabled = true;
  app.waiting("wait_signing_in");
  try {
    const session = await api.login(name, password);
    $("signin-password").value = "";
    signedIn(session);
  } catch (e) {
    error.hidden = false;
    if (e.code === "locked") {
      const minutes = Math.max(1, Math.ceil((e.retryAfter || 60) / 60));
      error.textContent = t("signin_locked", { minutes });
      error.dataset.code = "locked";
    } else if (e.code === "bad_credentials") {
      error.textContent = t("signin_bad");
      error.dataset.code = "bad_credentials";
    } else {
      error.textContent = describe(e);
      error.dataset.code = e.code;
    }
    app.waiting("wait_signin");
  } finally {
    $("signin-submit").disabled = false;
  }
}

function signedIn(session) {
  app.session = session;
  api.setCsrf(session.csrf_token);
  $("signin-error").hidden = true;
  if (session.must_change_password) return askPassword();
  renderStatic();
  if (!location.hash || location.hash === "#" || location.hash === "#/") location.hash = "#/cameras";
  else route();
}

// --- a one-time password: the user chooses their own before anything else -------------------

function askPassword() {
  if (app.module && app.module.leave) app.module.leave();
  app.module = null;
  app.view = "password";
  renderStatic();
  $("nav").hidden = true;
  show("password");
  $("password-error").hidden = true;
  app.waiting("wait_password");
  $("password-current").focus();
}

async function choosePassword(event) {
  event.preventDefault();
  const current = $("password-current").value;
  const next = $("password-new").value;
  const error = $("password-error");
  const say = (text, code) => {
    error.hidden = false;
    error.textContent = text;
    error.dataset.code = code;
  };
  if (!current || !next) return say(t("password_missing"), "missing");
  if (next.length < 10) return say(t("password_short"), "short");
  if (next !== $("password-again").value) return say(t("password_differ"), "differ");
  if (next === current) return say(t("password_same"), "same");
  $("password-submit").disabled = true;
  app.waiting("wait_password_saving");
  try {
    await api.changePassword(current, next);
    for (const id of ["password-current", "password-new", "password-again"]) $(id).value = "";
    signedIn(await api.me());
  } catch (e) {
    say(e.code === "wrong_password" ? t("password_wrong") : describe(e), e.code);
    app.waiting("wait_password");
  } finally {
    $("password-submit").disabled = false;
  }
}

async function signOut() {
  try {
    await api.logout();
  } catch {
    // the session may be gone already: the sign-in shows either way
  }
  showSignin(null);
}

// --- start ------------------------------------------------------------------------------------

async function start() {
  let saved = null;
  try {
    saved = localStorage.getItem(LANG_KEY);
  } catch {
    saved = null;
  }
  i18n.setLanguage(i18n.detectLanguage(saved));
  renderStatic();
  $("lang").addEventListener("click", switchLanguage);
  $("signout").addEventListener("click", signOut);
  $("signin-form").addEventListener("submit", signIn);
  $("password-form").addEventListener("submit", choosePassword);
  api.whenPasswordMustChange(() => askPassword());
  window.addEventListener("hashchange", route);
  api.whenSignedOut(() => showSignin(t("signin_again")));
  app.waiting("wait_session");
  try {
    signedIn(await api.me());
  } catch (e) {
    showSignin(e.status === 401 ? null : describe(e));
  }
}

start();

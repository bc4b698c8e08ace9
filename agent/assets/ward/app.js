// The ward phone page: enrolment from the link, then either bedside mode (choose a bed, photograph
// the patient with the back camera) or physician mode (check in with the front camera). Every
// capture is queued on the phone first and sent when the box can be reached; the box's verdict is
// shown in plain words. The status line under the title always says what the page is waiting for.
//
// Everything the page shows is set with textContent from the string table (i18n.js): no HTML is
// built from data, and switching the language re-renders the current view from its state.

import * as api from "./api.js";
import * as camera from "./camera.js";
import * as i18n from "./i18n.js";
import * as queue from "./queue.js";
import * as store from "./store.js";

const { t } = i18n;
const $ = (id) => document.getElementById(id);

const state = {
  phone: null,
  ward: null,
  wardSavedAt: null,
  wardError: null,
  // the waiting line: [key, vars]
  waiting: ["wait_opening", {}],
  // re-renders the current view (language switch)
  render: () => {},
  view: null,
  // the capture whose answer the page is showing or waiting for
  pending: null,
  photoUrl: null,
};

function waiting(key, vars = {}) {
  state.waiting = [key, vars];
  $("status").textContent = t(key, vars);
}

function show(view, render) {
  state.view = view;
  state.render = render;
  for (const section of document.querySelectorAll("section.view")) {
    section.hidden = section.id !== `view-${view}`;
  }
  render();
  renderPanels();
  document.body.dataset.view = view;
  // Screen readers start from the new view's title (the status line announces what it waits for).
  const title = document.querySelector(`#view-${view} h2`);
  if (title) {
    title.tabIndex = -1;
    title.focus({ preventScroll: true });
  }
}

function clear(element) {
  while (element.firstChild) element.removeChild(element.firstChild);
}

function item(list, text, className) {
  const li = document.createElement("li");
  li.textContent = text;
  if (className) li.className = className;
  list.appendChild(li);
  return li;
}

// --- header, language -------------------------------------------------------------------------

function renderHeader() {
  $("title").textContent = t("title");
  document.title = `Vigil · ${t("title")}`;
  const lang = $("lang");
  lang.textContent = t("lang_switch");
  lang.setAttribute("aria-label", t("lang_switch_label"));
  const phone = state.phone;
  const ward = state.ward ? state.ward.ward_name || state.ward.ward : phone && phone.ward;
  $("who").textContent = phone ? t("ward_line", { ward, name: phone.name }) : "";
}

async function switchLanguage() {
  const next = i18n.language() === "en" ? "zh-CN" : "en";
  i18n.setLanguage(next);
  store.put("lang", next).catch(() => {});
  renderAll();
}

function renderAll() {
  renderHeader();
  waiting(...state.waiting);
  state.render();
  renderPanels();
}

// --- messages (not enrolled, errors, enrolment) ---------------------------------------------

// A card with a title, lines of text and at most one action. `tone`: "ok", "bad" or "".
function message({ title, lines, action, tone = "", wait }) {
  show("message", () => {
    $("message-title").textContent = t(title);
    const body = $("message-body");
    clear(body);
    for (const [key, vars] of lines) {
      const p = document.createElement("p");
      p.textContent = t(key, vars);
      body.appendChild(p);
    }
    $("message-card").className = `card ${tone}`;
    const button = $("message-action");
    button.hidden = !action;
    if (action) {
      button.textContent = t(action.label);
      button.onclick = action.run;
    }
  });
  if (wait) waiting(...wait);
}

function enrolToken() {
  const match = /^#enrol=([A-Za-z0-9_-]+)$/.exec(location.hash);
  return match ? match[1] : null;
}

function clearFragment() {
  history.replaceState(null, "", location.pathname + location.search);
}

async function enrolFlow(token) {
  message({ title: "title", lines: [["wait_enrolling", {}]], wait: ["wait_enrolling"] });
  let phone;
  try {
    phone = await api.enrol(token);
  } catch (e) {
    if (e instanceof api.ApiError && e.status === 0) {
      // Keep the token: the link is still good once the Wi-Fi is back.
      message({
        title: "enrol_failed_title",
        lines: [["err_network", {}]],
        tone: "bad",
        action: { label: "retry", run: () => enrolFlow(token) },
        wait: ["wait_retry"],
      });
      return;
    }
    clearFragment();
    const known = { token_used: "err_token_used", token_expired: "err_token_expired", unknown_token: "err_unknown_token" };
    const line =
      e instanceof api.ApiError
        ? [known[e.code] || "err_server", { message: e.message }]
        : ["err_no_webcrypto", {}];
    // A phone registered before keeps working: a used or stale link does not undo that.
    const existing = await store.get("phone").catch(() => null);
    if (existing) {
      state.phone = existing;
      renderHeader();
    }
    message({
      title: "enrol_failed_title",
      lines: [line],
      tone: "bad",
      action: existing ? { label: "continue_phone", run: startWork } : null,
      wait: [existing ? "wait_refused" : "wait_enrol_link"],
    });
    return;
  }
  clearFragment();
  state.phone = phone;
  state.ward = null;
  // The ward's name (and a first signed request: the new key works); without network, its id.
  await loadWard();
  message({
    title: "enrol_done_title",
    lines: [
      ["enrol_done_ward", { ward: (state.ward && state.ward.ward_name) || phone.ward }],
      ["enrol_done_name", { name: phone.name }],
      [phone.mode === "physician" ? "enrol_done_physician" : "enrol_done_bedside", {}],
    ],
    tone: "ok",
    action: { label: "start", run: startWork },
    wait: ["wait_start"],
  });
}

// --- the ward and its beds --------------------------------------------------------------------

async function loadWard() {
  waiting("wait_ward");
  try {
    state.ward = await api.ward(state.phone);
    state.wardSavedAt = new Date().toISOString();
    state.wardError = null;
    await store.put("ward", { ward: state.ward, saved_at: state.wardSavedAt });
  } catch (e) {
    const saved = await store.get("ward").catch(() => null);
    if (saved) {
      state.ward = saved.ward;
    }
    state.wardSavedAt = saved ? saved.saved_at : null;
    state.wardError = e instanceof api.ApiError && e.status !== 0 ? e : "network";
  }
  renderHeader();
}

function showBeds() {
  show("beds", () => {
    $("beds-title").textContent = t("beds_title");
    $("refresh").textContent = t("refresh");
    const note = $("beds-note");
    note.hidden = !state.wardError;
    if (state.wardError === "network") {
      note.textContent = state.ward ? t("beds_saved", { time: i18n.formatTime(state.wardSavedAt) }) : t("beds_none");
    } else if (state.wardError) {
      note.textContent = errorText(state.wardError.status, state.wardError.code, state.wardError.message);
    }
    const list = $("beds");
    clear(list);
    const inpatients = (state.ward && state.ward.inpatients) || [];
    if (state.ward && inpatients.length === 0) item(list, t("beds_empty"), "empty");
    for (const inpatient of inpatients) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "bed";
      button.dataset.patient = inpatient.patient;
      const bed = document.createElement("span");
      bed.className = "bed-number";
      bed.textContent = t("bed", { bed: inpatient.bed });
      const patient = document.createElement("span");
      patient.className = "bed-patient";
      patient.textContent = inpatient.patient;
      button.append(bed, patient);
      button.onclick = () => openCamera(inpatient);
      li.appendChild(button);
      list.appendChild(li);
    }
  });
  waiting("wait_choose_bed");
}

// --- camera and capture -----------------------------------------------------------------------

function positionLine(update) {
  const line = $("position");
  line.dataset.state = update.position ? "ok" : update.error || "wait";
  state.positionUpdate = update;
  if (update.position) {
    line.textContent = t("position_ok", { m: Math.max(1, Math.round(update.position.accuracy_m)) });
  } else if (update.error === "denied") {
    line.textContent = t("position_denied");
  } else if (update.error) {
    line.textContent = t("position_none");
  } else {
    line.textContent = t("position_wait");
  }
}

async function openCamera(inpatient) {
  const physician = state.phone.mode === "physician";
  state.bed = inpatient;
  const shutter = $("shutter");
  shutter.disabled = true;
  state.positionUpdate = {};
  show("camera", () => {
    $("camera-title").textContent = physician
      ? t("camera_checkin")
      : t("camera_bed", { bed: inpatient.bed, patient: inpatient.patient });
    $("camera-hint").textContent = t(physician ? "hint_checkin" : "hint_bedside");
    shutter.textContent = t(physician ? "check_in" : "take_photo");
    $("camera-back").textContent = t("back");
    $("camera-back").hidden = physician;
    positionLine(state.positionUpdate);
  });
  waiting("wait_camera");
  camera.watchPosition(positionLine);
  try {
    await camera.start($("preview"), physician ? "user" : "environment");
  } catch (e) {
    camera.stopPosition();
    const key =
      e.name === "NotAllowedError" || e.name === "SecurityError"
        ? "camera_denied"
        : e.name === "NotFoundError" || e.name === "OverconstrainedError"
          ? "camera_missing"
          : "camera_failed";
    message({
      title: physician ? "camera_checkin" : "beds_title",
      lines: [[key, { message: e.message }]],
      tone: "bad",
      action: { label: "retry", run: () => openCamera(inpatient) },
      wait: ["wait_retry"],
    });
    return;
  }
  if (state.view !== "camera") {
    camera.stop();
    return;
  }
  shutter.disabled = false;
  waiting(physician ? "wait_checkin" : "wait_photo");
}

function closeCamera() {
  camera.stop();
  camera.stopPosition();
}

async function takePhoto() {
  const shutter = $("shutter");
  if (shutter.disabled) return;
  shutter.disabled = true;
  const capturedAt = new Date().toISOString();
  const inpatient = state.bed;
  let blob;
  try {
    blob = await camera.capture($("preview"));
  } catch (e) {
    shutter.disabled = false;
    waiting("camera_failed", { message: e.message });
    return;
  }
  waiting("position_wait");
  const position = await camera.positionNow();
  closeCamera();
  const photo = await blob.arrayBuffer();
  let captured;
  try {
    captured = await queue.add({
      phone: state.phone,
      mode: state.phone.mode,
      patient: inpatient ? inpatient.patient : null,
      bed: inpatient ? inpatient.bed : null,
      photo,
      type: blob.type || "image/jpeg",
      capturedAt,
      position,
    });
  } catch (e) {
    // No key to sign with (the browser's data was cleared) or no room to keep the photo.
    const lines = e instanceof api.ApiError && e.code === "no_keys" ? [["not_enrolled_body", {}]] : [["err_server", { message: e.message }]];
    message({ title: "not_enrolled_title", lines, tone: "bad", wait: ["wait_enrol_link"] });
    return;
  }
  state.pending = captured.id;
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photoUrl = URL.createObjectURL(blob);
  message({ title: "title", lines: [["wait_sending", {}]], wait: ["wait_sending"] });
  await queue.flush();
  if (state.pending === captured.id) {
    // Not answered: no network or the box is busy. It stays queued and is sent later.
    state.pending = null;
    const offline = !navigator.onLine || queue.lastFailure() === 0;
    message({
      title: "saved_title",
      lines: [[offline ? "saved_body" : "saved_busy", {}]],
      action: { label: state.phone.mode === "physician" ? "done" : "next_patient", run: home },
      wait: [navigator.onLine ? "wait_next" : "wait_network"],
    });
  }
}

// --- verdicts ---------------------------------------------------------------------------------

function whoOf(result) {
  return result.mode === "physician" ? t("checkin_of") : t("camera_bed", { bed: result.bed, patient: result.patient });
}

function errorText(status, code, messageText) {
  const key = `error.${code}`;
  return i18n.has(key) ? t(key, { message: messageText }) : t("error.other", { status, message: messageText || code });
}

// A failed check in words: the table's sentence for its reason (said to the physician in check-in
// mode; how far outside the ward, when the box measured it), or the box's own (English) sentence for a
// reason this page does not know yet.
function reasonText(check, result) {
  const outside = Number((check.facts || {}).distance_outside_m);
  const reason = check.reason === "outside_geofence" && outside > 0 ? "outside_geofence_by" : check.reason;
  const vars = { m: Math.round(outside), patient: result.patient, bed: result.bed };
  for (const key of [`reason.${result.mode}.${reason}`, `reason.${reason}`]) {
    if (i18n.has(key)) return t(key, vars);
  }
  return check.detail || check.reason;
}

// The failed checks in words, the same sentence once.
function reasonsOf(result) {
  const lines = [];
  for (const check of result.failed || []) {
    const text = reasonText(check, result);
    if (!lines.includes(text)) lines.push(text);
  }
  return lines;
}

function showVerdict(result) {
  const ok = result.verdict === "verified";
  show("verdict", () => {
    const card = $("verdict");
    card.className = `card verdict ${ok ? "ok" : "bad"}`;
    card.dataset.verdict = result.verdict;
    $("verdict-title").textContent = `${ok ? "✓" : "✗"} ${t(result.verdict === "refused" ? "refused_title" : ok ? "verdict_ok" : "verdict_bad")}`;
    $("verdict-who").textContent = `${whoOf(result)} · ${t("taken_at", { time: i18n.formatTime(result.captured_at) })}`;
    const reasons = $("verdict-reasons");
    clear(reasons);
    if (result.verdict === "refused") {
      $("verdict-body").textContent = errorText(result.status, result.error.code, result.error.message);
    } else if (ok) {
      $("verdict-body").textContent = t("verdict_ok_body", { who: whoOf(result) });
    } else {
      $("verdict-body").textContent = t("verdict_bad_body");
      for (const line of reasonsOf(result)) item(reasons, line);
    }
    const notes = [];
    if (result.late) notes.push(t("verdict_late", { time: i18n.formatTime(result.captured_at) }));
    if (result.repeated) notes.push(t("verdict_repeated"));
    $("verdict-note").hidden = notes.length === 0;
    $("verdict-note").textContent = notes.join(" ");
    const photo = $("verdict-photo");
    photo.hidden = !state.photoUrl;
    if (state.photoUrl) photo.src = state.photoUrl;
    // A revoked phone's upload is rejected whatever the photo: another one would be too.
    const revoked = (result.failed || []).some((c) => c.reason === "phone_revoked");
    const again = result.verdict === "rejected" && !revoked;
    // A physician's "next" opens the camera again: after a rejection that is checking in again.
    const physicianNext = again ? "checkin_again" : "done";
    // A revoked phone has nothing next: "Done", whatever its mode.
    const bedsideNext = revoked ? "done" : "next_patient";
    $("verdict-next").textContent = t(state.phone.mode === "physician" ? physicianNext : bedsideNext);
    // A rejected bedside photo is usually taken again at once (a better angle, the right bed).
    const inpatient = ((state.ward && state.ward.inpatients) || []).find((p) => p.patient === result.patient);
    const retake = $("verdict-retake");
    // (not after a refusal: the phone itself is the problem, a new photo would be refused the same way)
    retake.hidden = !again || result.mode !== "bedside" || !inpatient;
    retake.textContent = t("retake");
    retake.onclick = () => openCamera(inpatient);
  });
  const physician = state.phone.mode === "physician";
  const revoked = (result.failed || []).some((c) => c.reason === "phone_revoked");
  const again = result.verdict === "rejected" && !revoked;
  const bedsideWait = again ? "wait_rejected" : ok ? "wait_next" : "wait_refused";
  waiting(physician ? (again ? "wait_checkin_again" : "wait_done") : bedsideWait);
}

// --- the queue and the recent results ---------------------------------------------------------

let queueSize = 0;

async function renderPanels() {
  const [items, results] = await Promise.all([store.queued().catch(() => []), store.results().catch(() => [])]);
  queueSize = items.length;
  const onCamera = state.view === "camera" || !state.phone;

  const panel = $("queue");
  panel.hidden = onCamera || items.length === 0;
  panel.dataset.count = String(items.length);
  $("queue-title").textContent = t("queue_title", { n: items.length });
  renderQueueNote();
  const list = $("queue-list");
  clear(list);
  for (const it of items) {
    const who =
      it.meta.mode === "physician" ? t("checkin_of") : t("camera_bed", { bed: it.bed, patient: it.patient });
    item(list, t("queue_item", { who, time: i18n.formatTime(it.meta.captured_at) }));
  }
  $("queue-send").textContent = t("queue_send_now");

  const recent = $("results");
  recent.hidden = onCamera || state.view === "verdict" || results.length === 0;
  $("results-title").textContent = t("results_title");
  const resultList = $("results-list");
  clear(resultList);
  for (const r of results.slice(0, 5)) {
    const ok = r.verdict === "verified";
    const li = item(
      resultList,
      `${ok ? "✓" : "✗"} ${whoOf(r)} · ${i18n.formatTime(r.captured_at)} · ${t(ok ? "result_ok" : r.verdict === "refused" ? "result_refused" : "result_bad")}`,
      ok ? "ok" : "bad",
    );
    li.tabIndex = 0;
    li.setAttribute("role", "button");
    li.onclick = () => {
      state.photoUrl = null;
      showVerdict(r);
    };
    li.onkeydown = (e) => {
      if (e.key === "Enter" || e.key === " ") li.onclick();
    };
  }
}

function renderQueueNote() {
  if (!queueSize) return;
  const due = queue.nextTryAt();
  $("queue-note").textContent = !navigator.onLine
    ? t("queue_offline")
    : due
      ? t("queue_next_try", { s: Math.max(0, Math.ceil((due - Date.now()) / 1000)) })
      : t("queue_sending");
}

// --- flow ---------------------------------------------------------------------------------------

async function home() {
  if (state.phone.mode === "physician") {
    openCamera(null);
  } else {
    showBeds();
  }
}

async function startWork() {
  queue.flush();
  if (state.phone.mode === "physician") {
    openCamera(null);
    loadWard();
  } else {
    await loadWard();
    showBeds();
  }
}

function wire() {
  $("lang").onclick = switchLanguage;
  $("shutter").onclick = takePhoto;
  $("camera-back").onclick = () => {
    closeCamera();
    home();
  };
  $("verdict-next").onclick = home;
  $("refresh").onclick = async () => {
    await loadWard();
    showBeds();
  };
  $("queue-send").onclick = () => {
    queue.resetBackoff();
    queue.flush();
  };
  queue.onChange(({ result }) => {
    renderPanels();
    if (result && result.id === state.pending) {
      state.pending = null;
      showVerdict(result);
    }
  });
  window.addEventListener("online", async () => {
    queue.resetBackoff();
    queue.flush();
    renderPanels();
    // The list shown may be the saved one: fetch the current one now that the box can be reached.
    if (state.phone && state.wardError) {
      await loadWard();
      if (state.view === "beds") showBeds();
    }
  });
  window.addEventListener("offline", renderPanels);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && state.phone) queue.flush();
  });
  setInterval(renderQueueNote, 1000);
  // A new link opened while the page is open only changes the fragment: no reload, so listen.
  window.addEventListener("hashchange", () => {
    const token = enrolToken();
    if (token) {
      closeCamera();
      enrolFlow(token);
    }
  });
}

async function main() {
  i18n.setLanguage(i18n.detectLanguage(null));
  renderHeader();
  wire();
  if (!self.isSecureContext || !api.cryptoAvailable()) {
    message({
      title: "cannot_work_title",
      lines: [[self.isSecureContext ? "err_no_webcrypto" : "err_insecure", {}]],
      tone: "bad",
      wait: [self.isSecureContext ? "wait_browser" : "wait_secure"],
    });
    return;
  }
  try {
    await store.open();
  } catch {
    message({ title: "cannot_work_title", lines: [["err_no_storage", {}]], tone: "bad", wait: ["wait_browser"] });
    return;
  }
  i18n.setLanguage(i18n.detectLanguage(await store.get("lang").catch(() => null)));
  renderHeader();
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("sw.js", { scope: "./" }).catch(() => {});
  }
  const token = enrolToken();
  if (token) {
    await enrolFlow(token);
    return;
  }
  state.phone = await store.get("phone");
  if (!state.phone) {
    message({ title: "not_enrolled_title", lines: [["not_enrolled_body", {}]], wait: ["wait_enrol_link"] });
    return;
  }
  renderHeader();
  await startWork();
}

main().catch((e) => {
  message({ title: "enrol_failed_title", lines: [["err_server", { message: e.message }]], tone: "bad", wait: ["err_server", { message: e.message }] });
});

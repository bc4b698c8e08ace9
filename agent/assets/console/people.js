// People: the roster as the agent holds it (inpatients and their beds, dialysis sessions, physicians'
// shifts), who is enrolled, enrolment from photos chosen in the browser (checked by the box with the
// same detector, quality gate and reasons as `vigil enroll`; the photos are shown here from memory and
// never kept), and removal. Installers change; the others look.

import * as api from "./api.js";
import { $, el, replace, table } from "./dom.js";
import { t, describe, formatTime, has } from "./i18n.js";

let app = null;
let data = null;
const form = { id: "", role: "patient", files: [], urls: [], busy: false, result: null, message: null };
let removeMessage = null;
// The file input is kept across renders: a new one would say "no file chosen" beside the photos.
let fileInput = null;
// The id whose Remove was pressed once: a second press removes (one slip of a finger must not).
let confirming = null;

const yes = (v) => el("span", { class: `badge ${v ? "ok" : "warn"}` }, t(v ? "enrolled_yes" : "enrolled_no"));

export async function enter(context) {
  app = context;
  app.waiting("wait_people");
  render();
  await load();
}

export function leave() {
  dropPhotos();
}

async function load() {
  data = await api.people();
  render();
  app.waiting("wait_people_done");
}

function dropPhotos() {
  for (const url of form.urls) URL.revokeObjectURL(url);
  form.urls = [];
}

function pick(input) {
  dropPhotos();
  form.files = [...input.files];
  form.urls = form.files.map((f) => URL.createObjectURL(f));
  form.result = null;
  form.message = null;
  renderForm();
}

async function enrol(event) {
  event.preventDefault();
  const id = $("enrol-id").value.trim();
  form.id = id;
  form.role = $("enrol-role").value;
  if (!id || !form.files.length) {
    form.message = ["bad", () => t(!id ? "enrol_need_id" : "enrol_need_photo")];
    renderForm();
    return;
  }
  const body = new FormData();
  body.append("role", form.role);
  for (const file of form.files) body.append("photos", file, file.name);
  form.busy = true;
  form.message = null;
  renderForm();
  app.waiting("wait_enrolling");
  try {
    form.result = await api.enrol(id, body);
    form.message = form.result.enrolled ? ["ok", () => t("enrol_done", { id })] : ["bad", () => t("enrol_none", { id })];
    await load();
  } catch (e) {
    // No photo accepted: the answer is an error whose details hold each photo's verdict.
    const details = e.body && e.body.error && e.body.error.details;
    form.result = details && details.photos ? details : null;
    form.message = ["bad", () => describe(e)];
    app.waiting("wait_people_done");
  } finally {
    form.busy = false;
    renderForm();
  }
}

async function remove(id) {
  if (confirming !== id) {
    confirming = id;
    render();
    return;
  }
  confirming = null;
  app.waiting("wait_removing", { id });
  try {
    await api.removePerson(id);
    removeMessage = ["ok", () => t("removed", { id })];
    await load();
  } catch (e) {
    removeMessage = ["bad", () => describe(e)];
    render();
    app.failed(e);
  }
}

function reason(code) {
  return code ? (has(`photo.${code}`) ? t(`photo.${code}`) : code) : "";
}

function renderForm() {
  const box = $("enrol-box");
  if (!box) return;
  const results = form.result && form.result.photos ? form.result.photos : [];
  const photo = (file, i) => {
    const r = results.find((p) => p.name === file.name) || results[i];
    return el(
      "li",
      { class: `photo ${r ? (r.accepted ? "ok" : "bad") : ""}`, dataset: { photo: file.name } },
      el("img", { src: form.urls[i], alt: file.name }),
      el("span", { class: "photo-name" }, file.name),
      r ? el("span", { class: "photo-result" }, r.accepted ? t("photo_accepted") : t("photo_refused", { reason: reason(r.reason) })) : null,
    );
  };
  replace(
    box,
    el(
      "form",
      { id: "enrol-form", class: "card form", onsubmit: enrol },
      el("h3", {}, t("enrol_title")),
      el("p", { class: "muted" }, t("enrol_hint")),
      el("label", { for: "enrol-id" }, t("enrol_id")),
      el("input", { id: "enrol-id", value: form.id, autocapitalize: "none", spellcheck: false, oninput: (e) => { form.id = e.target.value; } }),
      el("label", { for: "enrol-role" }, t("enrol_role")),
      el(
        "select",
        { id: "enrol-role", onchange: (e) => { form.role = e.target.value; } },
        ["patient", "physician"].map((r) => el("option", { value: r, selected: form.role === r }, t(`person.${r}`))),
      ),
      el("label", { for: "enrol-photos" }, t("enrol_photos")),
      fileInput || (fileInput = el("input", { id: "enrol-photos", type: "file", accept: "image/jpeg,image/png", multiple: true, onchange: (e) => pick(e.target) })),
      form.files.length ? el("ul", { class: "photos" }, form.files.map(photo)) : null,
      form.message ? el("p", { id: "enrol-message", class: `message ${form.message[0]}`, role: "alert" }, form.message[1]()) : null,
      el("button", { type: "submit", id: "enrol-submit", class: "primary", disabled: form.busy }, t(form.busy ? "enrolling" : "enrol_submit")),
    ),
  );
}

// A roster list whose fields this page does not know in advance: its columns are the entries' keys.
function generic(rows) {
  const keys = [];
  for (const row of rows) for (const key of Object.keys(row)) if (!keys.includes(key)) keys.push(key);
  return table(
    keys.map((k) => (has(`field.${k}`) ? t(`field.${k}`) : k)),
    rows.map((row) => keys.map((k) => (k === "enrolled" ? yes(row[k]) : Array.isArray(row[k]) ? row[k].join(", ") : row[k] === undefined || row[k] === null ? "" : String(row[k])))),
  );
}

export function render() {
  if (!app) return;
  const section = $("view-people");
  const parts = [el("h2", { id: "people-title" }, t("people_title"))];
  if (!data) {
    replace(section, parts);
    return;
  }
  parts.push(el("p", { class: "muted", id: "roster-source" }, t(`roster.${data.roster_source}`)));
  const inpatients = data.inpatients || [];
  parts.push(el("h3", {}, t("inpatients_title", { n: inpatients.length })));
  parts.push(
    inpatients.length
      ? table([t("field.patient"), t("field.camera"), t("field.bed"), t("field.enrolled")], inpatients.map((p) => [p.patient, p.camera, p.bed, yes(p.enrolled)]))
      : el("p", { class: "muted" }, t("none")),
  );
  const sessions = data.dialysis_sessions || [];
  parts.push(el("h3", {}, t("dialysis_title", { n: sessions.length })));
  parts.push(sessions.length ? generic(sessions) : el("p", { class: "muted" }, t("none")));
  const shifts = data.shifts || [];
  parts.push(el("h3", {}, t("shifts_title", { n: shifts.length })));
  parts.push(shifts.length ? generic(shifts) : el("p", { class: "muted" }, t("none")));
  const enrolled = data.enrolled || [];
  parts.push(el("h3", {}, t("enrolled_title", { n: enrolled.length })));
  if (removeMessage) parts.push(el("p", { id: "remove-message", class: `message ${removeMessage[0]}`, role: "alert" }, removeMessage[1]()));
  const can = app.can("installer");
  parts.push(
    enrolled.length
      ? table(
          [t("field.id"), t("field.role"), t("field.enrolled_at"), t("field.faces"), ...(can ? [""] : [])],
          enrolled.map((p) => [
            p.id,
            t(`person.${p.role}`),
            p.enrolled_at ? formatTime(p.enrolled_at) : "",
            String(p.faces ?? ""),
            ...(can ? [el("button", { type: "button", class: confirming === p.id ? "danger small primary-danger" : "danger small", dataset: { remove: p.id }, onclick: () => remove(p.id) }, t(confirming === p.id ? "remove_confirm" : "remove"))] : []),
          ]),
        )
      : el("p", { class: "muted" }, t("none")),
  );
  if (can) parts.push(el("div", { id: "enrol-box" }));
  replace(section, parts);
  renderForm();
}

// Events: the evidence bundles of the box, newest first, filtered by kind, camera, verdict and time,
// with new ones arriving live (Server-Sent Events, GET /console/api/events/stream). A row opens its
// evidence (evidenceView): the clip playing in the page, the snapshot with its boxes, the manifest's
// facts, the verification of the bundle's signature and chain done on the box now, and the legal hold.

import * as api from "./api.js";
import { $, el, replace, svg, table } from "./dom.js";
import { t, describe, formatTime, has } from "./i18n.js";

export const KINDS = [
  "camera_tamper",
  "settlement_verified",
  "settlement_identity_mismatch",
  "settlement_no_face",
  "identity_shared_across_ids",
  "settlement_spoof_suspected",
  "physician_absent",
  "bed_absent",
  "bed_absence_escalated",
  "dialysis_patient_mismatch",
  "dialysis_session_verified",
  "dialysis_session_short",
  "dialysis_chair_empty",
  "dialysis_session_unverifiable",
  "bedside_check_verified",
  "bedside_check_rejected",
  "physician_checkin",
];
const VERDICTS = ["matched", "mismatch", "no_face", "verified", "rejected"];

let app = null;
const list = { events: [], next: null, filters: { kind: "", camera: "", verdict: "", since: "", until: "" }, cameras: [], live: "off", fresh: new Set() };
let stream = null;
// Bumped by every enter and leave: an answer that comes after the view was left is dropped.
let visit = 0;

export const kindName = (kind) => (has(`kind.${kind}`) ? t(`kind.${kind}`) : kind);
const verdictName = (v) => (v ? (has(`verdict.${v}`) ? t(`verdict.${v}`) : v) : "");

function query(before) {
  const f = list.filters;
  const iso = (local) => (local ? new Date(local).toISOString() : "");
  return { kind: f.kind, camera: f.camera, verdict: f.verdict, since: iso(f.since), until: iso(f.until), before: before ?? "", limit: 50 };
}

function matches(event) {
  const f = list.filters;
  if (f.kind && event.kind !== f.kind) return false;
  if (f.camera && event.camera !== f.camera) return false;
  if (f.verdict && event.verdict !== f.verdict) return false;
  if (f.since && new Date(event.at) < new Date(f.since)) return false;
  if (f.until && new Date(event.at) > new Date(f.until)) return false;
  return true;
}

export async function enter(context) {
  app = context;
  const mine = ++visit;
  app.waiting("wait_events");
  render();
  api
    .cameras()
    .then((answer) => {
      list.cameras = (answer.cameras || []).map((c) => c.id);
      renderFilters();
    })
    .catch(() => {});
  await load(mine);
  if (mine === visit) openStream();
}

export function leave() {
  visit++;
  if (stream) stream.close();
  stream = null;
  list.live = "off";
}

async function load(mine = visit) {
  app.waiting("wait_events");
  const answer = await api.events(query());
  if (mine !== visit) return;
  list.events = answer.events || [];
  list.next = answer.next_before ?? null;
  list.fresh.clear();
  renderRows();
  idle();
}

async function more() {
  if (list.next === null) return;
  app.waiting("wait_events");
  try {
    const answer = await api.events(query(list.next));
    list.events.push(...(answer.events || []));
    list.next = answer.next_before ?? null;
    renderRows();
    idle();
  } catch (e) {
    app.failed(e);
  }
}

function idle() {
  app.waiting(list.live === "on" ? "wait_events_live" : "wait_events_reconnect", { n: list.events.length });
}

function openStream() {
  if (stream) stream.close();
  stream = new EventSource(api.STREAM);
  stream.addEventListener("open", () => {
    list.live = "on";
    renderLive();
    idle();
  });
  stream.addEventListener("error", () => {
    // EventSource reconnects by itself; a 401 ends it (the next API call shows the sign-in).
    list.live = stream && stream.readyState === EventSource.CLOSED ? "off" : "reconnecting";
    renderLive();
    if (app && app.view === "events") idle();
  });
  // The box's stream fell behind and skipped bundles: the list is read again.
  stream.addEventListener("lagged", () => load().catch((e) => app.failed(e)));
  stream.addEventListener("bundle", (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    if (!matches(event) || list.events.some((e) => e.event_id === event.event_id)) return;
    list.events.unshift(event);
    list.fresh.add(event.event_id);
    renderRows();
    idle();
  });
}

// --- the list ---------------------------------------------------------------------------------

function select(id, label, value, options, onChange) {
  return el(
    "div",
    { class: "field" },
    el("label", { for: id }, label),
    el(
      "select",
      { id, onchange: (e) => onChange(e.target.value) },
      el("option", { value: "" }, t("filter_any")),
      options.map(([v, text]) => el("option", { value: v, selected: v === value }, text)),
    ),
  );
}

function renderFilters() {
  const box = $("event-filters");
  if (!box) return;
  const f = list.filters;
  const set = (name) => (value) => {
    f[name] = value;
    load().catch((e) => app.failed(e));
  };
  const time = (id, name) =>
    el("div", { class: "field" }, el("label", { for: id }, t(`filter_${name}`)), el("input", { id, type: "datetime-local", value: f[name], onchange: (e) => set(name)(e.target.value) }));
  replace(
    box,
    select("filter-kind", t("filter_kind"), f.kind, KINDS.map((k) => [k, kindName(k)]), set("kind")),
    select("filter-camera", t("filter_camera"), f.camera, list.cameras.map((c) => [c, c]), set("camera")),
    select("filter-verdict", t("filter_verdict"), f.verdict, VERDICTS.map((v) => [v, verdictName(v)]), set("verdict")),
    time("filter-since", "since"),
    time("filter-until", "until"),
    el(
      "div",
      { class: "field end" },
      el(
        "button",
        {
          type: "button",
          id: "filter-clear",
          onclick: () => {
            list.filters = { kind: "", camera: "", verdict: "", since: "", until: "" };
            renderFilters();
            load().catch((e) => app.failed(e));
          },
        },
        t("filter_clear"),
      ),
    ),
  );
}

function renderLive() {
  const badge = $("events-live");
  if (!badge) return;
  badge.textContent = t(`live.${list.live}`);
  badge.className = `badge live ${list.live === "on" ? "ok" : "warn"}`;
}

function row(event) {
  return el(
    "a",
    {
      class: `event-row${list.fresh.has(event.event_id) ? " fresh" : ""}`,
      href: `#/events/${encodeURIComponent(event.event_id)}`,
      dataset: { event: event.event_id, kind: event.kind },
    },
    el("span", { class: "ev-time" }, formatTime(event.at)),
    el("span", { class: "ev-kind" }, kindName(event.kind)),
    el("span", { class: "ev-camera" }, event.camera || ""),
    el("span", { class: `ev-verdict ${event.verdict || ""}` }, verdictName(event.verdict)),
    el("span", { class: "ev-summary" }, event.summary || ""),
    el("span", { class: "ev-held" }, event.held ? el("span", { class: "badge warn" }, t("held")) : ""),
  );
}

function renderRows() {
  const box = $("event-rows");
  if (!box) return;
  if (!list.events.length) {
    replace(box, el("p", { class: "note" }, t("events_none")));
  } else {
    replace(
      box,
      el(
        "div",
        { class: "event-head", "aria-hidden": "true" },
        ["col_time", "col_kind", "col_camera", "col_verdict", "col_summary", "col_held"].map((k) => el("span", {}, t(k))),
      ),
      list.events.map(row),
    );
  }
  const moreButton = $("events-more");
  if (moreButton) moreButton.hidden = list.next === null;
}

export function render() {
  if (!app) return;
  replace(
    $("view-events"),
    el("div", { class: "title-row" }, el("h2", { id: "events-title" }, t("events_title")), el("span", { id: "events-live", class: "badge live" })),
    el("div", { id: "event-filters", class: "filters" }),
    el("div", { id: "event-rows", class: "event-rows" }),
    el("button", { type: "button", id: "events-more", hidden: true, onclick: more }, t("events_more")),
  );
  renderFilters();
  renderLive();
  renderRows();
}

// --- one event's evidence ---------------------------------------------------------------------

let ev = null;

// The manifest as rows of facts: nested keys joined with dots, lists of plain values joined.
export function facts(value, prefix = "", out = []) {
  if (value === null || typeof value !== "object") {
    out.push([prefix, value === null ? "—" : String(value)]);
  } else if (Array.isArray(value) && value.every((v) => v === null || typeof v !== "object")) {
    out.push([prefix, value.join(", ")]);
  } else {
    for (const [key, inner] of Object.entries(value)) facts(inner, prefix ? `${prefix}.${key}` : key, out);
  }
  return out;
}

function snapshot(id, file, boxes) {
  const img = el("img", { class: "frame", src: api.fileUrl(id, file), alt: t("snapshot_alt", { file }) });
  const layer = svg("svg", { class: "overlay", viewBox: "0 0 1000 1000", preserveAspectRatio: "none", "aria-hidden": "true" });
  for (const b of boxes.filter((b) => b.file === file)) {
    layer.appendChild(svg("rect", { class: "box", x: b.x * 1000, y: b.y * 1000, width: b.w * 1000, height: b.h * 1000, "vector-effect": "non-scaling-stroke" }));
  }
  const stage = el("div", { class: "stage snapshot", dataset: { file } }, img, layer);
  img.addEventListener("load", () => {
    stage.style.aspectRatio = `${img.naturalWidth} / ${img.naturalHeight}`;
  });
  const labels = boxes.filter((b) => b.file === file && b.label).map((b) => b.label);
  return el("figure", {}, stage, labels.length ? el("figcaption", { class: "muted" }, labels.join(" · ")) : null);
}

async function setHold(on) {
  const input = $("hold-reason");
  const reason = input.value.trim();
  if (reason.length < 1 || reason.length > 200) {
    ev.holdMessage = ["bad", () => t("hold_reason_needed")];
    renderHold();
    $("hold-reason").focus();
    return;
  }
  ev.busy = true;
  renderHold();
  app.waiting("wait_hold");
  try {
    const answer = await api.hold(ev.data.event.event_id, on, reason);
    if (!ev) return;
    ev.data.holds = answer.holds || ev.data.holds;
    ev.data.event.held = on;
    ev.holdMessage = ["ok", () => t(answer.changed === false ? "hold_unchanged" : on ? "hold_placed" : "hold_released")];
    ev.reason = "";
  } catch (e) {
    if (!ev) return;
    ev.holdMessage = ["bad", () => describe(e)];
  } finally {
    if (ev) {
      ev.busy = false;
      renderHold();
      app.waiting("wait_evidence_done");
    }
  }
}

// The legal hold's card, rebuilt alone when the hold changes (the clip keeps playing).
function holdBox() {
  const { event, holds = [] } = ev.data;
  const held = !!event.held;
  return el(
    "div",
    { id: "hold", class: `card ${held ? "warn" : ""}` },
    el("h3", {}, t(held ? "hold_on" : "hold_off")),
    holds.length
      ? el("ul", { class: "plain" }, holds.map((h) => el("li", {}, t(h.on ? "hold_line_on" : "hold_line_off", { time: formatTime(h.at), by: h.by || "?", reason: h.reason || "" }))))
      : el("p", { class: "muted" }, t("hold_never")),
    app.can("installer", "supervisor")
      ? el(
          "form",
          { class: "form inline", onsubmit: (e) => { e.preventDefault(); setHold(!held); } },
          el("label", { for: "hold-reason" }, t("hold_reason")),
          el("input", { id: "hold-reason", maxlength: 200, value: ev.reason || "", oninput: (e) => { ev.reason = e.target.value; } }),
          el("button", { type: "submit", id: "hold-toggle", class: held ? "" : "primary", disabled: ev.busy }, t(held ? "hold_release" : "hold_place")),
        )
      : null,
    ev.holdMessage ? el("p", { id: "hold-message", class: `message ${ev.holdMessage[0]}`, role: "alert" }, ev.holdMessage[1]()) : null,
  );
}

function renderHold() {
  const box = $("hold");
  if (box) box.replaceWith(holdBox());
}

function renderEvidence() {
  const section = $("view-evidence");
  if (!ev || !ev.data) return;
  const { event, manifest, boxes = [], verification = {} } = ev.data;
  const files = event.files || [];
  const id = event.event_id;
  const clip = files.find((f) => f.endsWith(".mp4"));
  const images = files.filter((f) => /\.(jpe?g|png)$/i.test(f));
  const problems = verification.problems || [];
  const signature = el(
    "div",
    { id: "signature", class: `card ${verification.ok ? "ok" : "bad"}`, dataset: { ok: String(!!verification.ok) } },
    el("h3", {}, verification.ok ? t("signature_valid") : t("signature_invalid", { problems: problems.join("; ") || "?" })),
    verification.chain ? el("p", {}, verification.chain) : null,
    verification.checked_at ? el("p", { class: "muted" }, t("checked_at", { time: formatTime(verification.checked_at) })) : null,
  );
  const rows = facts(manifest || {});
  replace(
    section,
    el("a", { href: "#/events", class: "back" }, t("back_events")),
    el("h2", { id: "evidence-title" }, `${kindName(event.kind)} · ${event.camera || ""}`),
    el("p", { class: "muted" }, `${formatTime(event.at)} · ${event.summary || ""}`),
    el(
      "div",
      { class: "evidence" },
      el(
        "div",
        { class: "evidence-media" },
        clip
          ? el("video", { id: "evidence-video", controls: true, preload: "auto", playsInline: true, src: api.fileUrl(id, clip) })
          : el("p", { class: "note" }, t("no_clip")),
        images.map((f) => snapshot(id, f, boxes)),
      ),
      el("div", { class: "evidence-side" }, signature, holdBox(), el("h3", {}, t("files")), el("ul", { class: "plain" }, files.map((f) => el("li", {}, el("a", { href: api.fileUrl(id, f), download: f }, f))))),
    ),
    el("h3", {}, t("facts")),
    table([t("fact"), t("value")], rows.map(([k, v]) => [k, v]), "facts-table"),
  );
}

export const evidenceView = {
  async enter(context, id) {
    app = context;
    ev = { id, data: null, busy: false, reason: "", holdMessage: null };
    replace($("view-evidence"), el("a", { href: "#/events", class: "back" }, t("back_events")), el("h2", { id: "evidence-title" }, t("evidence_loading")));
    app.waiting("wait_evidence");
    try {
      const data = await api.evidence(id);
      if (!ev || ev.id !== id) return;
      ev.data = data;
      renderEvidence();
      app.waiting("wait_evidence_done");
    } catch (e) {
      replace($("view-evidence"), el("a", { href: "#/events", class: "back" }, t("back_events")), el("h2", { id: "evidence-title" }, t("evidence_failed")), el("p", { class: "problem" }, describe(e)));
      app.failed(e);
    }
  },
  leave() {
    const video = $("evidence-video");
    if (video) video.pause();
    ev = null;
  },
  render() {
    if (ev && ev.data) renderEvidence();
  },
};

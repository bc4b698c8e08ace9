// The region editor of one camera: its live frame with the regions as SVG polygons over it.
//
// Pointer events, so a mouse, a pen and a finger work the same way:
// - "Add bed" (chair, face window) starts a shape: each tap on the frame adds a point; tapping the
//   first point again (or "Finish shape", from 3 points) closes it; "Cancel" drops it.
// - dragging a vertex moves that point; dragging inside a polygon moves the whole polygon (kept
//   inside the frame); tapping a polygon selects it.
// - the list beside the frame renames (the name field) and deletes each region.
// Nothing is sent until Save: PUT /console/api/cameras/<id> with every region, and every problem the
// box names (422 invalid_config) is listed. The reference buttons take `vigil reference`'s frames.
//
// Coordinates are kept normalised (0..1, as the config holds them); the SVG's viewBox is the frame's
// pixel size so handles stay round, and their radius is set in screen pixels on each render.

import * as api from "./api.js";
import { frameSize, kindOf, badgeList, liveFrame, REFRESH_MS } from "./cameras.js";
import { $, el, replace, svg } from "./dom.js";
import { t, describe, formatTime } from "./i18n.js";

// On screen: a handle's drawn radius and the radius a finger may hit (a 44 px target).
const HANDLE_PX = 9;
const HIT_PX = 22;

let app = null;
let ed = null;
let timer = null;
// Bumped by every enter and leave: an answer that comes after the view was left is dropped.
let visit = 0;

function regionsOf(camera) {
  const regions = Object.entries(camera.regions || {}).map(([name, points]) => ({ name, kind: kindOf(name), points: points.map((p) => [...p]) }));
  if (camera.face_window) regions.push({ name: "face_window", kind: "face_window", points: camera.face_window.map((p) => [...p]) });
  return regions;
}

export async function enter(context, id) {
  app = context;
  const mine = ++visit;
  app.waiting("wait_camera", { id });
  replace($("view-editor"), el("a", { href: "#/cameras", class: "back" }, t("back_cameras")), el("h2", { id: "editor-title" }, id));
  const answer = await api.cameras();
  if (mine !== visit) return;
  const camera = (answer.cameras || []).find((c) => c.id === id);
  if (!camera) {
    ed = null;
    replace($("view-editor"), el("h2", { id: "editor-title" }, t("editor_unknown", { id })), el("a", { href: "#/cameras", class: "button" }, t("back_cameras")));
    app.waiting("editor_unknown", { id });
    return;
  }
  ed = {
    camera,
    name: camera.name || "",
    url: "",
    regions: regionsOf(camera),
    selected: null,
    drawing: null,
    drag: null,
    dirty: false,
    problems: [],
    message: null,
    busy: false,
    size: frameSize(camera),
  };
  render();
  idle();
  timer = setInterval(() => poll().catch((e) => app.failed(e)), REFRESH_MS);
}

export function leave() {
  visit++;
  clearInterval(timer);
  timer = null;
  ed = null;
}

// The camera's health, occupancy and references follow the box; the regions being edited do not.
async function poll() {
  const answer = await api.cameras();
  if (!ed) return;
  const camera = (answer.cameras || []).find((c) => c.id === ed.camera.id);
  if (!camera) return;
  ed.camera = camera;
  if (ed.frame) ed.frame.reload(Date.now());
  renderHealth();
  renderList(false);
}

function idle() {
  if (!ed) return;
  if (ed.drawing) app.waiting("wait_drawing", { n: ed.drawing.points.length });
  else if (ed.dirty) app.waiting("wait_unsaved");
  else app.waiting("wait_editor");
}

function installer() {
  return app.can("installer");
}

// --- the picture ------------------------------------------------------------------------------

function overlay() {
  const [w, h] = ed.size;
  const layer = svg("svg", { id: "editor-svg", class: "overlay editable", viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none" });
  layer.addEventListener("pointerdown", pointerDown);
  layer.addEventListener("pointermove", pointerMove);
  layer.addEventListener("pointerup", pointerUp);
  layer.addEventListener("pointercancel", pointerUp);
  return layer;
}

// Frame units per screen pixel (the frame is shown scaled).
function unit() {
  const layer = $("editor-svg");
  const width = layer ? layer.getBoundingClientRect().width : 0;
  return width > 0 ? ed.size[0] / width : 1;
}

function renderOverlay() {
  const layer = $("editor-svg");
  if (!layer || !ed) return;
  const [w, h] = ed.size;
  const u = unit();
  const pts = (points) => points.map(([x, y]) => `${x * w},${y * h}`).join(" ");
  replace(layer);
  for (const region of ed.regions) {
    const selected = ed.selected === region.name;
    const state = (ed.camera.occupancy || {})[region.name];
    const g = svg("g", { class: `shape ${region.kind}${selected ? " selected" : ""}${state ? ` ${state}` : ""}`, "data-region": region.name });
    g.appendChild(svg("polygon", { class: "region", points: pts(region.points), "data-region": region.name, "vector-effect": "non-scaling-stroke" }));
    const [cx, cy] = centroid(region.points);
    const label = svg("text", { class: "label", x: cx * w, y: cy * h, "font-size": 15 * u, "text-anchor": "middle", "dominant-baseline": "middle" });
    label.textContent = region.kind === "face_window" ? t("kind.face_window") : region.name;
    g.appendChild(label);
    if (installer()) {
      region.points.forEach(([x, y], index) => {
        g.appendChild(svg("circle", { class: "hit", cx: x * w, cy: y * h, r: HIT_PX * u, "data-region": region.name, "data-index": index }));
        g.appendChild(svg("circle", { class: "handle", cx: x * w, cy: y * h, r: HANDLE_PX * u, "vector-effect": "non-scaling-stroke" }));
      });
    }
    layer.appendChild(g);
  }
  if (ed.drawing) {
    const d = ed.drawing;
    const g = svg("g", { class: `shape drawing ${d.kind}` });
    if (d.points.length > 1) g.appendChild(svg("polyline", { class: "region", points: pts(d.points), "vector-effect": "non-scaling-stroke" }));
    d.points.forEach(([x, y], index) => {
      g.appendChild(svg("circle", { class: index === 0 ? "handle first" : "handle", cx: x * w, cy: y * h, r: (index === 0 ? HIT_PX / 1.6 : HANDLE_PX) * u, "vector-effect": "non-scaling-stroke" }));
    });
    layer.appendChild(g);
  }
}

function centroid(points) {
  const n = points.length || 1;
  return [points.reduce((s, p) => s + p[0], 0) / n, points.reduce((s, p) => s + p[1], 0) / n];
}

// The pointer's position on the frame, normalised and kept inside it.
function at(event) {
  const layer = $("editor-svg");
  const box = layer.getBoundingClientRect();
  const clamp = (v) => Math.min(1, Math.max(0, v));
  return [clamp((event.clientX - box.left) / box.width), clamp((event.clientY - box.top) / box.height)];
}

const round = (v) => Math.round(v * 10000) / 10000;

function pointerDown(event) {
  if (!ed || !installer() || event.button > 0) return;
  event.preventDefault();
  const layer = $("editor-svg");
  const p = at(event);
  if (ed.drawing) {
    const d = ed.drawing;
    const first = d.points[0];
    const box = layer.getBoundingClientRect();
    const near = first && Math.hypot((p[0] - first[0]) * box.width, (p[1] - first[1]) * box.height) <= HIT_PX;
    if (near && d.points.length >= 3) finishDrawing();
    else if (!near) d.points.push(p.map(round));
    renderOverlay();
    renderList(true);
    idle();
    return;
  }
  const target = event.target;
  const name = target.getAttribute && target.getAttribute("data-region");
  if (name === null || name === undefined) {
    if (ed.selected !== null) {
      ed.selected = null;
      renderOverlay();
      renderList(true);
    }
    return;
  }
  const region = ed.regions.find((r) => r.name === name);
  if (!region) return;
  ed.selected = name;
  const index = target.getAttribute("data-index");
  ed.drag = {
    pointer: event.pointerId,
    region,
    index: index === null ? null : Number(index),
    start: p,
    original: region.points.map((q) => [...q]),
    moved: false,
  };
  layer.setPointerCapture(event.pointerId);
  renderOverlay();
  renderList(true);
}

function pointerMove(event) {
  if (!ed || !ed.drag || event.pointerId !== ed.drag.pointer) return;
  event.preventDefault();
  const d = ed.drag;
  const p = at(event);
  if (d.index !== null) {
    d.region.points[d.index] = p.map(round);
  } else {
    // The whole polygon, by the pointer's move, limited so that no point leaves the frame.
    let dx = p[0] - d.start[0];
    let dy = p[1] - d.start[1];
    const xs = d.original.map((q) => q[0]);
    const ys = d.original.map((q) => q[1]);
    dx = Math.min(1 - Math.max(...xs), Math.max(-Math.min(...xs), dx));
    dy = Math.min(1 - Math.max(...ys), Math.max(-Math.min(...ys), dy));
    d.region.points = d.original.map(([x, y]) => [round(x + dx), round(y + dy)]);
  }
  d.moved = true;
  renderOverlay();
}

function pointerUp(event) {
  if (!ed || !ed.drag || event.pointerId !== ed.drag.pointer) return;
  if (ed.drag.moved) changed();
  ed.drag = null;
  renderOverlay();
}

// A field typed in: the buttons follow without rebuilding the panel (the field keeps its focus).
function typed() {
  ed.dirty = true;
  const save = $("save");
  if (save) save.disabled = ed.busy || !!ed.drawing;
  const discard = $("discard");
  if (discard) discard.disabled = ed.busy;
  idle();
}

function changed() {
  ed.dirty = true;
  ed.message = null;
  renderList(true);
  idle();
}

// --- drawing ----------------------------------------------------------------------------------

function freeName(kind) {
  if (kind === "face_window") return "face_window";
  for (let n = 1; ; n++) {
    const name = `${kind}-${n}`;
    if (!ed.regions.some((r) => r.name === name)) return name;
  }
}

function startDrawing(kind) {
  ed.drawing = { kind, points: [] };
  ed.selected = null;
  renderOverlay();
  renderList(true);
  idle();
}

function finishDrawing() {
  const d = ed.drawing;
  if (!d || d.points.length < 3) return;
  const name = freeName(d.kind);
  ed.regions.push({ name, kind: d.kind, points: d.points });
  ed.drawing = null;
  ed.selected = name;
  changed();
  renderOverlay();
}

function cancelDrawing() {
  ed.drawing = null;
  renderOverlay();
  renderList(true);
  idle();
}

function rename(region, input) {
  const name = input.value.trim();
  if (name === region.name) return;
  let problem = null;
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) problem = t("rename_bad");
  else if (name === "face_window" || ed.regions.some((r) => r !== region && r.name === name)) problem = t("rename_taken", { name });
  if (problem) {
    input.setCustomValidity(problem);
    input.reportValidity();
    input.value = region.name;
    input.setCustomValidity("");
    return;
  }
  if (ed.selected === region.name) ed.selected = name;
  region.name = name;
  region.kind = kindOf(name);
  changed();
  renderOverlay();
}

function remove(region) {
  ed.regions = ed.regions.filter((r) => r !== region);
  if (ed.selected === region.name) ed.selected = null;
  changed();
  renderOverlay();
}

// --- saving, references -----------------------------------------------------------------------

async function save() {
  const camera = ed.camera;
  const change = { regions: {} };
  for (const region of ed.regions) {
    if (region.kind === "face_window") change.face_window = region.points;
    else change.regions[region.name] = region.points;
  }
  if (camera.role === "settlement_window" && !change.face_window) change.face_window = null;
  if (ed.name.trim() && ed.name.trim() !== (camera.name || "")) change.name = ed.name.trim();
  // The address is shown without its credentials, so it is sent only when a new one is typed.
  if (ed.url.trim()) change.url = ed.url.trim();
  ed.busy = true;
  ed.problems = [];
  ed.message = null;
  renderList(true);
  app.waiting("wait_saving");
  try {
    const answer = await api.saveCamera(camera.id, change);
    if (!ed) return;
    const { applied, ...saved } = answer;
    ed.camera = { ...camera, ...saved };
    ed.regions = regionsOf(ed.camera);
    ed.name = ed.camera.name || "";
    ed.url = "";
    ed.dirty = false;
    ed.message = ["ok", () => t(applied === "camera_restarted" ? "saved_restarted" : "saved_live")];
  } catch (e) {
    if (!ed) return;
    ed.problems = e.problems;
    ed.message = ["bad", () => e.code === "invalid_config" ? t("save_refused", { n: e.problems.length }) : describe(e)];
  } finally {
    if (ed) {
      ed.busy = false;
      renderOverlay();
      renderList(true);
      idle();
    }
  }
}

function discard() {
  ed.regions = regionsOf(ed.camera);
  ed.name = ed.camera.name || "";
  ed.url = "";
  ed.drawing = null;
  ed.selected = null;
  ed.dirty = false;
  ed.problems = [];
  ed.message = null;
  renderOverlay();
  renderList(true);
  idle();
}

async function reference(kind, uniformOk) {
  ed.busy = true;
  ed.message = null;
  renderList(true);
  app.waiting("wait_reference");
  try {
    await api.takeReference(ed.camera.id, kind, uniformOk);
    if (!ed) return;
    ed.message = ["ok", () => t(kind === "empty" ? "ref_empty_done" : "ref_uniform_done")];
    await poll();
  } catch (e) {
    if (!ed) return;
    ed.message = ["bad", () => e.code === "uniform_view" ? t("ref_uniform_refused") : describe(e)];
  } finally {
    if (ed) {
      ed.busy = false;
      renderList(true);
      idle();
    }
  }
}

// --- the panel --------------------------------------------------------------------------------

function renderHealth() {
  const box = $("editor-health");
  if (box) replace(box, badgeList(ed.camera));
}

function addButtons() {
  const role = ed.camera.role;
  const kinds = role === "settlement_window" ? ["face_window"] : role === "dialysis_room" ? ["chair", "bed"] : ["bed", "chair"];
  return kinds
    .filter((k) => k !== "face_window" || !ed.regions.some((r) => r.kind === "face_window"))
    .map((kind, i) =>
      el("button", { type: "button", class: i === 0 ? "primary" : "", id: `add-${kind}`, disabled: ed.busy, onclick: () => startDrawing(kind) }, t(`add.${kind}`)),
    );
}

// The panel beside the frame; `full` rebuilds the name fields too (not while one is being typed in).
function renderList(full) {
  const panel = $("editor-panel");
  if (!panel || !ed) return;
  if (!full) {
    for (const state of panel.querySelectorAll("[data-occupancy]")) {
      const value = (ed.camera.occupancy || {})[state.dataset.occupancy];
      state.textContent = value ? t(`occ.${value}`) : "";
      state.className = `occ ${value || ""}`;
    }
    const refs = $("editor-refs");
    if (refs) refs.replaceWith(referenceTimes());
    return;
  }
  const can = installer();
  const parts = [];
  if (can && ed.drawing) {
    const d = ed.drawing;
    parts.push(
      el(
        "div",
        { class: "card drawing-card" },
        el("p", {}, t("drawing_hint", { kind: t(`kind.${d.kind}`) })),
        el("p", { class: "muted" }, t("drawing_points", { n: d.points.length })),
        el(
          "div",
          { class: "actions" },
          el("button", { type: "button", id: "finish-shape", class: "primary", disabled: d.points.length < 3, onclick: () => { finishDrawing(); renderOverlay(); } }, t("finish_shape")),
          el("button", { type: "button", id: "cancel-shape", onclick: cancelDrawing }, t("cancel")),
        ),
      ),
    );
  } else if (can) {
    parts.push(el("div", { class: "actions" }, addButtons()));
  }
  const rows = ed.regions.map((region) => {
    const state = (ed.camera.occupancy || {})[region.name];
    const selected = ed.selected === region.name;
    const nameField =
      region.kind === "face_window" || !can
        ? el("span", { class: "region-name" }, region.kind === "face_window" ? t("kind.face_window") : region.name)
        : el("input", {
            class: "region-name",
            value: region.name,
            "aria-label": t("rename_label", { name: region.name }),
            dataset: { rename: region.name },
            onchange: (e) => rename(region, e.target),
            onfocus: () => {
              ed.selected = region.name;
              renderOverlay();
            },
          });
    return el(
      "li",
      { class: `region-row ${region.kind}${selected ? " selected" : ""}`, dataset: { region: region.name } },
      el("span", { class: `swatch ${region.kind}`, "aria-hidden": "true" }),
      nameField,
      el("span", { class: `occ ${state || ""}`, dataset: { occupancy: region.name } }, state ? t(`occ.${state}`) : ""),
      can ? el("button", { type: "button", class: "danger small", dataset: { delete: region.name }, "aria-label": t("delete_label", { name: region.name }), onclick: () => remove(region) }, t("delete")) : null,
    );
  });
  parts.push(el("h3", {}, t("regions_title")));
  parts.push(rows.length ? el("ul", { class: "region-list" }, rows) : el("p", { class: "muted" }, t(can ? "regions_none_draw" : "regions_none")));
  if (can) {
    parts.push(
      el("label", { for: "camera-name" }, t("camera_name")),
      el("input", { id: "camera-name", value: ed.name, oninput: (e) => { ed.name = e.target.value; typed(); } }),
      el("label", { for: "camera-url" }, t("camera_url")),
      el("input", {
        id: "camera-url",
        value: ed.url,
        placeholder: ed.camera.url || "",
        autocapitalize: "none",
        spellcheck: false,
        oninput: (e) => {
          ed.url = e.target.value;
          typed();
        },
      }),
      el("p", { class: "muted hint" }, t("camera_url_hint")),
    );
  }
  if (ed.message) parts.push(el("p", { id: "editor-message", class: `message ${ed.message[0]}`, role: "alert" }, ed.message[1]()));
  if (ed.problems.length) parts.push(el("ul", { id: "editor-problems", class: "problems" }, ed.problems.map((p) => el("li", {}, p))));
  if (can) {
    parts.push(
      el(
        "div",
        { class: "actions" },
        el("button", { type: "button", id: "save", class: "primary", disabled: ed.busy || !!ed.drawing || !ed.dirty, onclick: save }, t(ed.busy ? "saving" : "save")),
        el("button", { type: "button", id: "discard", disabled: ed.busy || !ed.dirty, onclick: discard }, t("discard")),
      ),
    );
    parts.push(el("h3", {}, t("references_title")));
    parts.push(el("p", { class: "muted" }, t("references_hint")));
    const hasRegions = ed.camera.role !== "settlement_window";
    parts.push(
      el(
        "div",
        { class: "actions" },
        hasRegions ? el("button", { type: "button", id: "ref-empty", disabled: ed.busy || ed.dirty, onclick: () => reference("empty", false) }, t("ref_empty")) : null,
        el("button", { type: "button", id: "ref-uniform", disabled: ed.busy, onclick: () => reference("view", true) }, t("ref_uniform")),
      ),
    );
    if (ed.dirty && hasRegions) parts.push(el("p", { class: "muted" }, t("ref_save_first")));
  }
  parts.push(referenceTimes());
  replace(panel, parts);
}

function referenceTimes() {
  const refs = ed.camera.references || {};
  const line = (kind) => (refs[kind] && refs[kind].taken_at ? t(`ref_taken.${kind}`, { time: formatTime(refs[kind].taken_at) }) : t(`ref_never.${kind}`));
  const items = [el("li", { dataset: { ref: "view" } }, line("view")), el("li", { dataset: { ref: "empty" } }, line("empty"))];
  // The night (infrared) one exists only on cameras with an IR mode, once taken at night.
  if (refs.empty_night && refs.empty_night.taken_at) items.push(el("li", { dataset: { ref: "empty_night" } }, line("empty_night")));
  return el("ul", { id: "editor-refs", class: "muted plain" }, ...items);
}

export function render() {
  if (!ed) return;
  const camera = ed.camera;
  const [w, h] = ed.size;
  const stage = el("div", { class: "stage editing" });
  stage.style.aspectRatio = `${w} / ${h}`;
  const mine = ed;
  ed.frame = liveFrame(camera, (nw, nh) => {
    // A frame that arrives after the editor was left (or re-rendered) has nothing to resize.
    if (ed !== mine) return;
    // The frame's own size wins over the reported one (a camera without a frame yet reports 0).
    if (nw && nh && (nw !== ed.size[0] || nh !== ed.size[1]) && !(camera.width > 0)) {
      ed.size = [nw, nh];
      stage.style.aspectRatio = `${nw} / ${nh}`;
      const old = $("editor-svg");
      if (old) old.replaceWith(overlay());
      renderOverlay();
    }
  });
  stage.append(ed.frame.img, ed.frame.none, overlay());
  replace(
    $("view-editor"),
    el(
      "div",
      { class: "editor-head" },
      el("a", { href: "#/cameras", class: "back" }, t("back_cameras")),
      el("h2", { id: "editor-title" }, t("editor_title", { name: camera.name || camera.id })),
      el("p", { class: "muted" }, `${camera.id} · ${t(`camrole.${camera.role}`)}`),
      el("div", { id: "editor-health" }, badgeList(camera)),
    ),
    el("div", { class: "editor" }, el("div", { class: "editor-stage" }, stage, installer() ? el("p", { class: "muted hint" }, t("editor_hint")) : null), el("div", { id: "editor-panel", class: "editor-panel" })),
  );
  renderList(true);
  // The handles' size depends on the frame's size on screen: draw once laid out.
  requestAnimationFrame(renderOverlay);
}

let resizeQueued = false;
window.addEventListener("resize", () => {
  if (resizeQueued) return;
  resizeQueued = true;
  requestAnimationFrame(() => {
    resizeQueued = false;
    renderOverlay();
  });
});

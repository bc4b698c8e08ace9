// The cameras: one card per camera with its latest frame (fetched again every 2 s, swapped in only
// once loaded so it never flickers), its regions drawn over it, its health as badges and its regions'
// occupancy. A card opens the region editor (editor.js).

import * as api from "./api.js";
import { $, el, replace, svg } from "./dom.js";
import { t } from "./i18n.js";

export const REFRESH_MS = 2000;
let app = null;
let list = [];
let timer = null;
let stamp = Date.now();
// Bumped by every enter and leave: an answer that comes after the view was left is dropped.
let visit = 0;

// A region's kind from its name, as installers name them: bed-7 → bed, chair-3 → chair.
export function kindOf(name) {
  if (name === "face_window") return "face_window";
  const lower = name.toLowerCase();
  if (lower.startsWith("bed") || lower.startsWith("床")) return "bed";
  if (lower.startsWith("chair") || lower.startsWith("椅")) return "chair";
  return "other";
}

// The frame's size for drawing over it (what the camera reports, else 16:9).
export function frameSize(camera) {
  return camera.width > 0 && camera.height > 0 ? [camera.width, camera.height] : [1280, 720];
}

// The health of a camera as badges: [text, tone] (tone: ok, bad, warn, "").
export function badges(camera) {
  const out = [];
  out.push(camera.online ? [t("cam_online"), "ok"] : [t("cam_offline"), "bad"]);
  const tamper = camera.tamper || "ok";
  if (tamper !== "ok") out.push([t(`tamper.${tamper}`), "bad"]);
  out.push([t("cam_fps", { fps: Number(camera.fps || 0).toFixed(1) }), ""]);
  if (camera.frames_dropped) out.push([t("cam_dropped", { n: camera.frames_dropped }), "warn"]);
  if (camera.restarts) out.push([t("cam_restarts", { n: camera.restarts }), "warn"]);
  if (camera.keyframes_only) out.push([t("cam_keyframes"), "warn"]);
  return out;
}

export function badgeList(camera) {
  return el("ul", { class: "badges" }, badges(camera).map(([text, tone]) => el("li", { class: `badge ${tone}` }, text)));
}

// The regions of `camera` as SVG over its frame (read-only: the grid's cards).
export function regionsOverlay(camera) {
  const [w, h] = frameSize(camera);
  const layer = svg("svg", { class: "overlay", viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none", "aria-hidden": "true" });
  const shapes = Object.entries(camera.regions || {});
  if (camera.face_window) shapes.push(["face_window", camera.face_window]);
  for (const [name, points] of shapes) {
    const state = (camera.occupancy || {})[name];
    layer.appendChild(
      svg("polygon", {
        class: `region ${kindOf(name)}${state ? ` ${state}` : ""}`,
        points: points.map(([x, y]) => `${x * w},${y * h}`).join(" "),
        "vector-effect": "non-scaling-stroke",
      }),
    );
  }
  return layer;
}

// An <img> of the camera's latest frame that reloads itself into place; a note when there is none.
export function liveFrame(camera, onSize) {
  const img = el("img", { class: "frame", alt: t("frame_alt", { name: camera.name || camera.id }), draggable: false });
  const none = el("p", { class: "no-frame" }, t(camera.online ? "frame_waiting" : "frame_none"));
  const load = (s) => {
    const next = new Image();
    next.onload = () => {
      img.src = next.src;
      none.hidden = true;
      img.hidden = false;
      if (onSize) onSize(next.naturalWidth, next.naturalHeight);
    };
    next.onerror = () => {
      if (!img.getAttribute("src")) {
        img.hidden = true;
        none.hidden = false;
      }
    };
    next.src = api.frameUrl(camera.id, s);
  };
  img.hidden = true;
  load(stamp);
  return { img, none, reload: load };
}

export function stage(camera, extra) {
  const [w, h] = frameSize(camera);
  const box = el("div", { class: "stage" });
  box.style.aspectRatio = `${w} / ${h}`;
  const frame = liveFrame(camera);
  box.append(frame.img, frame.none, extra || regionsOverlay(camera));
  return { box, frame };
}

function cardText(camera) {
  const occupancy = Object.entries(camera.occupancy || {});
  return el(
    "div",
    { class: "camera-text" },
    el("h3", {}, camera.name || camera.id),
    el("p", { class: "muted" }, `${camera.id} · ${t(`camrole.${camera.role}`)}`),
    badgeList(camera),
    occupancy.length
      ? el(
          "ul",
          { class: "occupancy" },
          occupancy.map(([name, state]) => el("li", { class: `occ ${state}`, dataset: { region: name } }, `${name}: ${t(`occ.${state}`)}`)),
        )
      : null,
  );
}

function card(camera) {
  const { box, frame } = stage(camera);
  const link = el(
    "a",
    { class: "camera-card", href: `#/cameras/${encodeURIComponent(camera.id)}`, dataset: { camera: camera.id } },
    box,
    cardText(camera),
  );
  link.frame = frame;
  return link;
}

export async function enter(context) {
  app = context;
  const mine = ++visit;
  app.waiting("wait_cameras");
  await refresh(true, mine);
  if (mine !== visit) return;
  timer = setInterval(() => refresh(false).catch((e) => app.failed(e)), REFRESH_MS);
}

export function leave() {
  visit++;
  clearInterval(timer);
  timer = null;
}

async function refresh(first, mine = visit) {
  const answer = await api.cameras();
  if (mine !== visit || (!timer && !first)) return;
  list = answer.cameras || [];
  stamp = Date.now();
  if (first) render();
  else update();
  app.waiting(list.length ? "wait_cameras_live" : "cameras_none", { n: list.length });
}

// Health and frames updated in place (a full render would reset what the user is scrolled to).
function update() {
  const grid = $("camera-grid");
  const cards = [...grid.querySelectorAll(".camera-card")];
  if (cards.length !== list.length || cards.some((c, i) => c.dataset.camera !== list[i].id)) return render();
  list.forEach((camera, i) => {
    cards[i].querySelector(".camera-text").replaceWith(cardText(camera));
    cards[i].querySelector(".overlay").replaceWith(regionsOverlay(camera));
    if (camera.online) cards[i].frame.reload(stamp);
  });
}

export function render() {
  if (!app) return;
  replace($("camera-grid"), list.length ? list.map(card) : [el("p", { class: "note" }, t("cameras_none"))]);
}

// The audit log (installers and supervisors): every change made in the console and every sign-in,
// newest first, as the box's append-only table holds it.

import * as api from "./api.js";
import { $, el, replace, table } from "./dom.js";
import { t, formatTime, has } from "./i18n.js";

let app = null;
let entries = [];

export async function enter(context) {
  app = context;
  app.waiting("wait_audit");
  render();
  entries = (await api.audit(200)).entries || [];
  render();
  app.waiting("wait_audit_done", { n: entries.length });
}

export function leave() {}

function details(value) {
  if (!value || typeof value !== "object") return value === null || value === undefined ? "" : String(value);
  return Object.entries(value)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}: ${typeof v === "object" && v !== null ? JSON.stringify(v) : v}`)
    .join(" · ");
}

export function render() {
  if (!app) return;
  replace(
    $("view-audit"),
    el("div", { class: "title-row" }, el("h2", { id: "audit-title" }, t("audit_title")), el("button", { type: "button", id: "audit-refresh", onclick: () => enter(app).catch((e) => app.failed(e)) }, t("refresh"))),
    entries.length
      ? table(
          [t("col_time"), t("audit_who"), t("audit_action"), t("audit_outcome"), t("audit_address"), t("audit_details")],
          entries.map((e) =>
            el(
              "tr",
              { dataset: { action: e.action, outcome: e.outcome } },
              [formatTime(e.at), e.role && e.role !== "-" ? `${e.who} (${has(`role.${e.role}`) ? t(`role.${e.role}`) : e.role})` : e.who, has(`action.${e.action}`) ? t(`action.${e.action}`) : e.action, has(`outcome.${e.outcome}`) ? t(`outcome.${e.outcome}`) : e.outcome, e.address, details(e.details)].map(
                (c) => el("td", {}, c),
              ),
            ),
          ),
          "grid-table audit-table",
        )
      : el("p", { class: "muted" }, t("audit_none")),
  );
}

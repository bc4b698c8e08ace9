// Every capture goes into the queue first (IndexedDB, with its original time, position and
// signature), then the sender tries to deliver it: now, when the network comes back ("online"), when
// the page opens, and on a timer with backoff. Only an answer that settles the capture removes it:
// a verdict (200, or 403 for a withdrawn phone) or a refusal that a re-send would not change (other
// 4xx). No network, 408, 429 and 5xx keep it queued for the next try (Retry-After respected).

import * as api from "./api.js";
import * as store from "./store.js";

const FIRST_RETRY_MS = 5000;
const LAST_RETRY_MS = 5 * 60 * 1000;

let sending = null;
let again = false;
let timer = null;
let failures = 0;
let nextTry = 0;
let lastStatus = null;
const listeners = new Set();

// `listener({result})` after each answer, `listener({})` when the queue changed otherwise.
export function onChange(listener) {
  listeners.add(listener);
}

function notify(change = {}) {
  for (const listener of listeners) listener(change);
}

// When the next automatic try is due (ms since the epoch), 0 when none is scheduled.
export function nextTryAt() {
  return timer ? nextTry : 0;
}

// Signs the capture and keeps it; the caller then calls flush().
export async function add({ phone, mode, patient, bed, photo, type, capturedAt, position }) {
  const meta = {
    capture_id: crypto.randomUUID(),
    mode,
    ...(patient ? { patient } : {}),
    captured_at: capturedAt,
    ...(position ? { position } : {}),
    photo_sha256: await api.sha256Hex(photo),
  };
  const { metaHeader, signature } = await api.signCapture(meta);
  const item = { id: meta.capture_id, phone: phone.id, meta, metaHeader, signature, photo, type, patient, bed };
  await store.enqueue(item);
  notify();
  return item;
}

export function flush() {
  if (sending) {
    again = true;
    return sending;
  }
  sending = (async () => {
    do {
      again = false;
      await sendAll();
    } while (again);
  })().finally(() => (sending = null));
  return sending;
}

function retryable(status) {
  return status === 0 || status === 408 || status === 429 || status >= 500;
}

async function sendAll() {
  clearTimeout(timer);
  timer = null;
  for (const item of await store.queued()) {
    const answer = await api.upload(item);
    lastStatus = answer.status;
    if (retryable(answer.status)) {
      failures += 1;
      const backoff = Math.min(FIRST_RETRY_MS * 2 ** (failures - 1), LAST_RETRY_MS);
      const delay = Math.max(backoff, answer.retryAfter * 1000);
      nextTry = Date.now() + delay;
      timer = setTimeout(flush, delay);
      notify();
      return;
    }
    failures = 0;
    const result = settle(item, answer);
    await store.dequeue(item.id);
    await store.addResult(result);
    notify({ result });
  }
  notify();
}

// What the page shows for a capture the box has answered.
function settle(item, { status, body }) {
  const error = (body && body.error) || null;
  const answer = status === 200 ? body : error && (error.details || (body && body.details));
  const base = {
    id: item.id,
    answered_at: new Date().toISOString(),
    captured_at: item.meta.captured_at,
    mode: item.meta.mode,
    patient: item.patient || null,
    bed: item.bed || null,
    status,
  };
  if (answer && answer.verdict) {
    return {
      ...base,
      verdict: answer.verdict,
      late: !!answer.late,
      repeated: !!answer.repeated,
      failed: (answer.checks || [])
        .filter((c) => c.outcome === "failed")
        .map((c) => ({ name: c.name, reason: c.reason, detail: c.detail, facts: c.facts || {} })),
    };
  }
  return {
    ...base,
    verdict: "refused",
    error: { code: (error && error.code) || `http_${status}`, message: (error && error.message) || "" },
  };
}

// The status of the last try that did not settle a capture (0: no network), null when none failed.
export function lastFailure() {
  return lastStatus !== null && retryable(lastStatus) ? lastStatus : null;
}

export function resetBackoff() {
  failures = 0;
}

// The phone's side of the protocol (docs/ward-phones.md, "Protocol"; agent/src/phones/protocol.rs):
// the key pair made at enrolment, the signatures, and the three calls to the box.
//
// The private key is generated non-extractable: the page can sign with it but nobody, the page
// included, can read it out of the browser. Signatures are WebCrypto's ECDSA P-256 / SHA-256
// (r ‖ s, 64 bytes), which the box verifies with ring's ECDSA_P256_SHA256_FIXED.

import * as store from "./store.js";

export const ENROL_PATH = "/api/phones/enrol";
export const WARD_PATH = "/api/phones/ward";
export const CHECKIN_PATH = "/api/phones/checkins";

// An answer the box gave with an error body ({"error": {"code", "message"}}), or status 0 when the
// request did not reach it.
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || (status === 0 ? "network" : "http_" + status);
    this.details = details;
  }
}

export function cryptoAvailable() {
  return self.isSecureContext === true && !!(self.crypto && crypto.subtle && crypto.randomUUID);
}

export function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

export function base64url(bytes) {
  return base64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const utf8 = (text) => new TextEncoder().encode(text);

export async function sha256Hex(buffer) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", buffer));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function request(path, init) {
  let response;
  try {
    response = await fetch(path, { cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer", ...init });
  } catch (e) {
    throw new ApiError(0, "network", String(e && e.message ? e.message : e));
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // a proxy's HTML error page, an empty 503: the status says enough
  }
  return { status: response.status, body, retryAfter: Number(response.headers.get("Retry-After")) || 0 };
}

function failure({ status, body }) {
  const error = (body && body.error) || {};
  return new ApiError(status, error.code, error.message, error.details ?? (body && body.details));
}

// Makes the key pair, registers its public half with the one-time token, keeps both and the phone.
export async function enrol(token) {
  const keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey));
  const answer = await request(ENROL_PATH, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token, public_key: base64(spki) }),
  });
  if (answer.status !== 200 || !answer.body || !answer.body.phone) throw failure(answer);
  const phone = answer.body.phone;
  await store.put("keys", { privateKey: keys.privateKey, publicKey: keys.publicKey });
  await store.put("phone", phone);
  await store.remove("ward");
  return phone;
}

export async function sign(message) {
  const keys = await store.get("keys");
  if (!keys) throw new ApiError(0, "no_keys", "this phone has no key: register it again");
  const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, keys.privateKey, utf8(message));
  return base64url(new Uint8Array(signature));
}

// The ward's inpatients (a signed GET); throws ApiError.
export async function ward(phone) {
  const time = new Date().toISOString();
  const signature = await sign(`vigil-get-v1\n${WARD_PATH}\n${time}`);
  const answer = await request(WARD_PATH, {
    headers: { "X-Vigil-Phone": phone.id, "X-Vigil-Time": time, "X-Vigil-Signature": signature },
  });
  if (answer.status !== 200 || !answer.body) throw failure(answer);
  return answer.body;
}

// Signs a capture once, when it is taken: the queue keeps the exact header and signature, so a
// re-send is byte-for-byte the same upload (the box answers a repeat with its stored verdict).
export async function signCapture(meta) {
  const metaHeader = base64url(utf8(JSON.stringify(meta)));
  const signature = await sign(`vigil-checkin-v1\n${metaHeader}`);
  return { metaHeader, signature };
}

// Sends one queued capture. Resolves to {status, body, retryAfter}; status 0 when it did not get there.
export async function upload(item) {
  try {
    return await request(CHECKIN_PATH, {
      method: "POST",
      headers: {
        "Content-Type": item.type,
        "X-Vigil-Phone": item.phone,
        "X-Vigil-Meta": item.metaHeader,
        "X-Vigil-Signature": item.signature,
      },
      body: item.photo,
    });
  } catch (e) {
    if (e instanceof ApiError) return { status: 0, body: null, retryAfter: 0 };
    throw e;
  }
}

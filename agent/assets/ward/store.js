// What the phone keeps between visits, in IndexedDB (origin-private, survives a restart):
// - "state": the phone's record from enrolment, its key pair (CryptoKey objects: the private key is
//   non-extractable, the browser stores it without ever exposing its bytes), the ward's list of
//   inpatients as last fetched (for opening without network), the chosen language;
// - "queue": captures not yet judged by the box, each with its photo, its signed metadata (original
//   time and position) and its signature; removed only once the box has answered for good;
// - "results": the last answers, shown under "Recent results".

const DB_NAME = "vigil-ward";
const DB_VERSION = 1;
const KEEP_RESULTS = 10;

let opening = null;

export function open() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      if (!("indexedDB" in self)) {
        reject(new Error("no IndexedDB"));
        return;
      }
      const request = indexedDB.open(DB_NAME, DB_VERSION);
      request.onupgradeneeded = () => {
        const db = request.result;
        db.createObjectStore("state");
        db.createObjectStore("queue", { keyPath: "id" });
        db.createObjectStore("results", { keyPath: "id" });
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
      request.onblocked = () => reject(new Error("the page's storage is in use by an older tab"));
    });
    opening.catch(() => (opening = null));
  }
  return opening;
}

async function run(storeName, mode, body) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(storeName, mode);
    const store = tx.objectStore(storeName);
    let result;
    const request = body(store);
    if (request) request.onsuccess = () => (result = request.result);
    tx.oncomplete = () => resolve(result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error("storage transaction aborted"));
  });
}

export const get = (key) => run("state", "readonly", (s) => s.get(key));
export const put = (key, value) => run("state", "readwrite", (s) => s.put(value, key));
export const remove = (key) => run("state", "readwrite", (s) => s.delete(key));

// The queue, oldest capture first.
export async function queued() {
  const items = (await run("queue", "readonly", (s) => s.getAll())) || [];
  return items.sort((a, b) => a.meta.captured_at.localeCompare(b.meta.captured_at));
}

export const enqueue = (item) => run("queue", "readwrite", (s) => s.put(item));
export const dequeue = (id) => run("queue", "readwrite", (s) => s.delete(id));

// The last answers, newest first.
export async function results() {
  const items = (await run("results", "readonly", (s) => s.getAll())) || [];
  return items.sort((a, b) => b.answered_at.localeCompare(a.answered_at));
}

export async function addResult(result) {
  await run("results", "readwrite", (s) => s.put(result));
  const all = await results();
  for (const old of all.slice(KEEP_RESULTS)) {
    await run("results", "readwrite", (s) => s.delete(old.id));
  }
}

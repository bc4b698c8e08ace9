// The page's service worker (scope /ward/): keeps the page's own files so it opens on the ward with
// no network. Network first (the box answers with no-cache + ETag, so an upgraded box's page is picked
// up at once), the cached copy when the network fails. The API (/api/...) is outside the scope and
// never cached: the queue in IndexedDB is what keeps captures.

const CACHE = "vigil-ward-v1";
const SHELL = [
  "./",
  "./index.html",
  "./style.css",
  "./app.js",
  "./i18n.js",
  "./store.js",
  "./api.js",
  "./queue.js",
  "./camera.js",
  "./sw.js",
  "./icon.svg",
  "./manifest.webmanifest",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  const scope = new URL(self.registration.scope);
  // Only the page's files: the API's answers (even the GET of the ward list) go straight to the network.
  if (request.method !== "GET" || url.origin !== scope.origin || !url.pathname.startsWith(scope.pathname)) return;
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(request, copy));
        }
        return response;
      })
      .catch(() =>
        caches.match(request, { ignoreSearch: true }).then((hit) => hit || caches.match("./index.html")),
      ),
  );
});

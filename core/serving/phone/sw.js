// The service worker: the app starts offline from what it cached. The shell is asked
// of the network first (an updated server's app arrives the next time the phone is
// online) and falls back to the cache; the runtime's files never change for a pinned
// version, so they come from the cache first. Model files are cached by the app itself
// (app.js), predictions and syncs always go to the network.
const SHELL = 'vision-shell-v1';
const RUNTIME = 'vision-runtime-v1';
const FILES = ['./', 'index.html', 'app.js', 'pillow.js', 'manifest.webmanifest', 'icon.svg',
               'icon-192.png', 'icon-512.png', 'vendor/litertjs-core/index.js',
               'vendor/litertjs-wasm-utils/index.js'];

self.addEventListener('install', event => {
  event.waitUntil(caches.open(SHELL).then(cache => cache.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', event => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener('fetch', event => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== location.origin) return;
  const scope = new URL(self.registration.scope).pathname;
  if (!url.pathname.startsWith(scope)) return;
  const path = url.pathname.slice(scope.length);
  event.respondWith(path.startsWith('vendor/') ? cacheFirst(event.request)
                                               : networkFirst(event.request));
});

async function cacheFirst(request) {
  const cached = await caches.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) (await caches.open(RUNTIME)).put(request, response.clone());
  return response;
}

async function networkFirst(request) {
  try {
    const response = await fetch(request);
    if (response.ok) (await caches.open(SHELL)).put(request, response.clone());
    return response;
  } catch (error) {
    const cached = await caches.match(request, {ignoreSearch: true});
    if (cached) return cached;
    throw error;
  }
}

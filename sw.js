// Kinema's service worker: keeps the page itself (index.html, web/, pkg/) so the page opens offline
// after a first visit. Network first, so a visitor online always gets the current build and the
// saved copy is only a fallback. Model files are not touched here: web/model-loader.js fetches,
// verifies (sha256) and caches those itself. It lives at the site root because a service worker
// only controls pages at or below its own folder.
const SHELL_CACHE = 'kinema-shell-v1';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

function isShell(url) {
  if (url.origin !== self.location.origin) return false;
  const scope = new URL(self.registration.scope).pathname;
  if (!url.pathname.startsWith(scope)) return false;
  const rel = url.pathname.slice(scope.length);
  return rel === '' || rel === 'index.html' || rel.startsWith('web/') || rel.startsWith('pkg/');
}

async function networkFirst(request) {
  const cache = await caches.open(SHELL_CACHE);
  // Every address of the page (any ?prompt=… link) is the same document: keep one copy.
  const key = request.mode === 'navigate' ? self.registration.scope : request;
  try {
    const response = await fetch(request);
    if (response.ok && response.status === 200) {
      // Full disk: the page still works online, it just will not open offline.
      cache.put(key, response.clone()).catch(() => {});
    }
    return response;
  } catch (err) {
    const saved = await cache.match(key);
    if (saved) return saved;
    throw err;
  }
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET' || request.headers.has('range')) return;
  if (!isShell(new URL(request.url))) return;
  event.respondWith(networkFirst(request));
});

// The gallery: finished clips kept in IndexedDB (the encoded file as a Blob, a poster image and the
// settings that made it), so they survive reloads and can be replayed, downloaded or deleted.

const DB_NAME = 'kinema';
const DB_VERSION = 1;
const STORE = 'clips';

/**
 * @typedef {object} StoredClip
 * @property {string} id
 * @property {number} createdAt   ms since the epoch
 * @property {string} prompt
 * @property {string} fullPrompt
 * @property {number} seed
 * @property {number} seconds
 * @property {number} steps
 * @property {string} style
 * @property {string} modelId
 * @property {number} width
 * @property {number} height
 * @property {number} fps
 * @property {number} frames
 * @property {string} mimeType
 * @property {string} filename
 * @property {Blob} blob
 * @property {Blob|null} poster   an image of the first frame
 */

const promisify = (req) => new Promise((resolve, reject) => {
  req.onsuccess = () => resolve(req.result);
  req.onerror = () => reject(req.error);
});

export class Gallery {
  /** Opens (and on first use creates) the database. */
  static async open(name = DB_NAME) {
    if (!globalThis.indexedDB) throw new Error('this browser gives the page no IndexedDB (private mode?), so clips cannot be kept');
    const req = indexedDB.open(name, DB_VERSION);
    req.onupgradeneeded = () => {
      const store = req.result.createObjectStore(STORE, { keyPath: 'id' });
      store.createIndex('createdAt', 'createdAt');
    };
    // Another tab with an older version would block the upgrade; say so instead of hanging.
    req.onblocked = () => console.warn('[gallery] waiting for another Kinema tab to close the old database');
    const db = await promisify(req);
    // A newer page in another tab wants to upgrade: let it, this tab reloads its list on next use.
    db.onversionchange = () => db.close();
    return new Gallery(db);
  }

  constructor(db) {
    this.db = db;
  }

  async #tx(mode, fn) {
    const tx = this.db.transaction(STORE, mode);
    const done = new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error('the gallery transaction was aborted'));
    });
    const result = await fn(tx.objectStore(STORE));
    await done;
    return result;
  }

  /** Stores a clip; returns its id. Throws a readable error when storage is full. */
  async add(clip) {
    const record = { ...clip, id: clip.id ?? crypto.randomUUID(), createdAt: clip.createdAt ?? Date.now() };
    try {
      await this.#tx('readwrite', (s) => promisify(s.put(record)));
    } catch (err) {
      if (err?.name === 'QuotaExceededError') throw new Error('browser storage is full, so the clip could not be kept in the gallery (download it instead, or delete older clips)', { cause: err });
      throw err;
    }
    return record.id;
  }

  /** @returns {Promise<StoredClip[]>} newest first */
  async list() {
    const all = await this.#tx('readonly', (s) => promisify(s.index('createdAt').getAll()));
    return all.reverse();
  }

  /** @returns {Promise<StoredClip|undefined>} */
  async get(id) {
    return this.#tx('readonly', (s) => promisify(s.get(id)));
  }

  async delete(id) {
    await this.#tx('readwrite', (s) => promisify(s.delete(id)));
  }

  close() {
    this.db.close();
  }
}

/** A small image of an RGBA8 frame, for gallery cards (null where OffscreenCanvas is missing). */
export async function posterFromRgba(rgba, width, height) {
  if (typeof OffscreenCanvas === 'undefined') return null;
  const canvas = new OffscreenCanvas(width, height);
  canvas.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
  return canvas.convertToBlob({ type: 'image/webp', quality: 0.8 });
}

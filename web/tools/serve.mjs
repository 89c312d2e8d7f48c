#!/usr/bin/env node
// The local static host: the page, the wasm package and the model folders, served the way any
// static host or CDN would (MIME types, CORS, byte ranges), so the page behaves the same pointed
// at this server or at a CDN.
//
//   node web/tools/serve.mjs [--port 8080] [--host 127.0.0.1]

import http from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import finalhandler from 'finalhandler';
import serveStatic from 'serve-static';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

// Only what a visitor's browser needs: never the sources, .git or the build cache.
const SERVED = [/^\/$/, /^\/index\.html$/, /^\/sw\.js$/, /^\/web\//, /^\/pkg\//, /^\/models\//];
const HIDDEN = /\/(node_modules|tools|train)\/|\/\./;

/** Starts the server; resolves to { server, url } once it listens. */
export function startServer({ port = 8080, host = '127.0.0.1', root = ROOT, log = true } = {}) {
  const files = serveStatic(root, {
    index: ['index.html'],
    dotfiles: 'deny',
    // Model shards are immutable per sha256 in the manifest; the page checks integrity itself,
    // so revalidation (ETag) is enough and no stale build is ever served.
    cacheControl: true,
    maxAge: 0,
    setHeaders(res, filePath) {
      if (filePath.endsWith('.wasm')) res.setHeader('Content-Type', 'application/wasm');
    },
  });

  const server = http.createServer((req, res) => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Allow-Headers', 'Range');
    res.setHeader('Access-Control-Expose-Headers', 'Content-Length, Content-Range, Accept-Ranges, ETag');
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { 'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS', 'Access-Control-Max-Age': '86400' });
      res.end();
      return;
    }
    const pathname = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
    const allowed = SERVED.some((re) => re.test(pathname)) && !HIDDEN.test(pathname);
    if (!allowed || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(allowed ? 405 : 404, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(allowed ? 'method not allowed\n' : 'not found\n');
      return;
    }
    const done = finalhandler(req, res, {
      onerror: (err) => log && err.status >= 500 && console.error(`[serve] ${req.url}: ${err.message}`),
    });
    files(req, res, done);
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const { port: actual } = server.address();
      const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
      resolve({ server, url: `http://${shownHost}:${actual}/` });
    });
  });
}

function parseArgs(argv) {
  const options = { port: Number(process.env.PORT ?? 8080), host: process.env.HOST ?? '127.0.0.1' };
  for (let i = 0; i < argv.length; i += 1) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--port' && value !== undefined) {
      options.port = Number(value);
      i += 1;
    } else if (flag === '--host' && value !== undefined) {
      options.host = value;
      i += 1;
    } else {
      throw new Error(`unknown argument ${flag} (usage: serve.mjs [--port N] [--host ADDR])`);
    }
  }
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    throw new Error(`--port must be a whole number from 0 to 65535, not ${options.port}`);
  }
  return options;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const { url } = await startServer(parseArgs(process.argv.slice(2)));
    console.log(`Kinema is served at ${url}  (Ctrl+C stops it)`);
  } catch (err) {
    const hint = err.code === 'EADDRINUSE' ? ' (the port is taken: pass --port N or PORT=N)' : '';
    console.error(`[serve] error: ${err.message}${hint}`);
    process.exit(1);
  }
}

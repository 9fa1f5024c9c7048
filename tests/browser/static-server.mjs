// SPDX-License-Identifier: LGPL-2.1-or-later
//
// The browser suite's web server, on 127.0.0.1 (a port the system chose):
//   /<file>                    tests/browser/pages/<file>
//   /node_modules/sip.js/...   the ES modules of the sip.js npm package (lib/)
//   /bundle/jssip.js           the jssip npm package (CommonJS only) and what it requires, wrapped
//                              into one script that defines window.JsSIP
// Nothing else: no directory listing, no path outside those directories.

import { createServer } from "node:http";
import { readFileSync, existsSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, extname, join, relative, resolve, sep } from "node:path";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json"
};

// `file` when it is a regular file inside `root`, else null.
function inside(root, path) {
  const file = resolve(root, "." + path);
  if (file !== root && !file.startsWith(root + sep))
    return null;
  return existsSync(file) && statSync(file).isFile() ? file : null;
}

// Where `spec`, required from `from`, is for a browser: for a package, its "browser" field (a
// string) or else its "main", in node_modules (even where Node has a built-in of that name, such
// as "events").
function resolveForBrowser(from, spec) {
  const require = createRequire(from);
  if (spec.startsWith(".") || spec.startsWith("/"))
    return require.resolve(spec);
  const manifest = require.resolve(`${spec}/package.json`);
  const { browser, main } = JSON.parse(readFileSync(manifest, "utf8"));
  const target = typeof browser === "string" ? browser : (main ?? "index.js");
  return require.resolve(resolve(dirname(manifest), target));
}

// The CommonJS module `entry` and every module it requires (found by their literal
// require("...") calls), as one script: window[name] = the entry's exports.
export function bundleCommonJs(entry, name, root) {
  const modules = new Map(); // file -> {id, deps: {spec: id}}
  const pending = [entry];
  const REQUIRE = /\brequire\(\s*(["'])([^"']+)\1\s*\)/g;

  while (pending.length > 0) {
    const file = pending.pop();
    if (modules.has(file))
      continue;
    const module = { id: relative(root, file), deps: {}, source: readFileSync(file, "utf8") };
    modules.set(file, module);
    if (file.endsWith(".json"))
      continue;
    for (const [, , spec] of module.source.matchAll(REQUIRE)) {
      const target = resolveForBrowser(file, spec);
      module.deps[spec] = relative(root, target);
      pending.push(target);
    }
  }

  const parts = [`(function () {\nconst definitions = {};\n`];
  for (const [file, module] of modules) {
    const body = file.endsWith(".json") ? `module.exports = ${module.source};`
                                        : module.source;
    parts.push(`definitions[${JSON.stringify(module.id)}] = {\n` +
               `  deps: ${JSON.stringify(module.deps)},\n` +
               `  run: function (require, module, exports) {\n${body}\n}};\n`);
  }
  parts.push(`const cache = {};
function load(id) {
  if (cache[id])
    return cache[id].exports;
  const definition = definitions[id];
  const module = { exports: {} };
  cache[id] = module;
  definition.run.call(module.exports, (spec) => {
    if (!(spec in definition.deps))
      throw new Error(id + ": require(" + JSON.stringify(spec) + ") is not in the bundle");
    return load(definition.deps[spec]);
  }, module, module.exports);
  return module.exports;
}
window[${JSON.stringify(name)}] = load(${JSON.stringify(relative(root, entry))});
})();
`);
  return parts.join("");
}

// Starts the server; resolves with {origin, close()}.
export function startStaticServer({ pagesDir, nodeModulesDir }) {
  const sipjsDir = join(nodeModulesDir, "sip.js", "lib");
  const jssipEntry = createRequire(join(nodeModulesDir, "..", "package.json")).resolve("jssip");
  let jssipBundle = null;

  const server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url, "http://127.0.0.1").pathname);
    let file = null;
    let body = null;

    try {
      if (path === "/bundle/jssip.js") {
        jssipBundle ??= bundleCommonJs(jssipEntry, "JsSIP", nodeModulesDir);
        body = jssipBundle;
      } else if (path.startsWith("/node_modules/sip.js/lib/")) {
        file = inside(sipjsDir, path.slice("/node_modules/sip.js/lib".length));
      } else {
        file = inside(pagesDir, path);
      }
      if (file !== null)
        body = readFileSync(file);
    } catch (e) {
      response.writeHead(500, { "content-type": "text/plain" });
      response.end(String(e.stack ?? e));
      return;
    }
    if (request.method !== "GET" || body === null) {
      response.writeHead(request.method === "GET" ? 404 : 405, { "content-type": "text/plain" });
      response.end("not here\n");
      return;
    }
    response.writeHead(200, {
      "content-type": TYPES[extname(file ?? path)] ?? "application/octet-stream",
      "cache-control": "max-age=600"
    });
    response.end(body);
  });

  return new Promise((resolvePromise, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      resolvePromise({
        origin: `http://127.0.0.1:${port}`,
        close: () => new Promise((done) => {
          server.closeAllConnections();
          server.close(() => done());
        })
      });
    });
  });
}

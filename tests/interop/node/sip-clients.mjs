// SPDX-License-Identifier: LGPL-2.1-or-later
//
// Two SIP-over-WebSocket user agents (alice, bob) in one process, built on SIP.js 0.21 or
// JsSIP 3.x, used as interop peers by the sofia-ws tests.
//
//   node sip-clients.mjs --lib sipjs|jssip --server ws://127.0.0.1:PORT/ --domain 127.0.0.1
//                        [--keepalive N] [--timeout S] [--trace]
//
// Scenario: both connect (each over its own WebSocket) and REGISTER; with --keepalive N each
// sends RFC 5626 CRLF keep-alives every ~N s and waits for the server's CRLF answer; alice
// sends OPTIONS to the server (expects 200); alice sends a MESSAGE to bob, which the server
// relays over bob's connection (bob checks the body); both unREGISTER and disconnect.
//
// Output: one JSON object per line on stdout, for every transport event and SIP step, e.g.
//   {"ua":"alice","event":"connected"}
//   {"ua":"alice","step":"register","status":200}
//   {"ua":"bob","step":"message-received","body":"...","from":"sip:alice@127.0.0.1"}
// and finally {"result":"ok"} or {"result":"fail","error":"..."}. SIP traces (--trace) and
// library logs go to stderr.
//
// Exit status: 0 every step succeeded; 1 a step failed; 2 bad usage; 3 global timeout
// (default 20 s).

import { parseArgs } from "node:util";
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";

const EXIT_OK = 0;
const EXIT_FAIL = 1;
const EXIT_USAGE = 2;
const EXIT_TIMEOUT = 3;

const started = Date.now();
let currentStep = "start";

function emit(obj) {
  process.stdout.write(JSON.stringify({ ...obj, ms: Date.now() - started }) + "\n");
}

function trace(enabled, ...parts) {
  if (enabled) {
    process.stderr.write(parts.join(" ") + "\n");
  }
}

function finish(code, error) {
  if (code === EXIT_OK) {
    emit({ result: "ok" });
  } else {
    emit({ result: "fail", step: currentStep, error: String(error) });
  }
  process.exit(code);
}

class StepError extends Error {}

function expectStatus(ua, step, status, wanted = 200) {
  if (status !== wanted) {
    throw new StepError(`${ua}: ${step} got ${status}, expected ${wanted}`);
  }
}

// ---- command line ------------------------------------------------------------------------

function usage(message) {
  process.stderr.write(
    `${message}\nusage: node sip-clients.mjs --lib sipjs|jssip --server ws://127.0.0.1:PORT/ ` +
      `--domain 127.0.0.1 [--keepalive N] [--timeout S] [--trace]\n`
  );
  emit({ result: "fail", error: message });
  process.exit(EXIT_USAGE);
}

let args;
try {
  args = parseArgs({
    options: {
      lib: { type: "string" },
      server: { type: "string" },
      domain: { type: "string", default: "127.0.0.1" },
      keepalive: { type: "string", default: "0" },
      timeout: { type: "string", default: "20" },
      trace: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false }
    },
    strict: true
  }).values;
} catch (e) {
  usage(e.message);
}
if (args.help) {
  usage("help");
}
if (args.lib !== "sipjs" && args.lib !== "jssip") {
  usage("--lib must be sipjs or jssip");
}
if (!args.server || !/^wss?:\/\//.test(args.server)) {
  usage("--server must be a ws:// or wss:// URL");
}
const keepalive = Number(args.keepalive);
const timeout = Number(args.timeout);
if (!Number.isFinite(keepalive) || keepalive < 0) {
  usage("--keepalive must be a number of seconds >= 0");
}
if (!Number.isFinite(timeout) || timeout <= 0) {
  usage("--timeout must be a number of seconds > 0");
}
const options = {
  lib: args.lib,
  server: args.server,
  domain: args.domain,
  keepalive,
  trace: args.trace
};

process.on("uncaughtException", (e) => finish(EXIT_FAIL, `uncaught exception: ${e && e.stack ? e.stack : e}`));
process.on("unhandledRejection", (e) => finish(EXIT_FAIL, `unhandled rejection: ${e && e.stack ? e.stack : e}`));

const globalTimer = setTimeout(() => {
  finish(EXIT_TIMEOUT, `global timeout after ${timeout} s (last step: ${currentStep})`);
}, timeout * 1000);

// ---- WebSocket ---------------------------------------------------------------------------

let websocketImpl = "native";
if (typeof globalThis.WebSocket === "undefined") {
  const { WebSocket } = await import("ws");
  globalThis.WebSocket = WebSocket;
  websocketImpl = "ws";
}

// A promise with its resolve/reject exposed, optionally settled once.
function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

// ---- SIP.js 0.21 -------------------------------------------------------------------------

async function makeSipjsClient(name, opts) {
  const { UserAgent, Registerer, Messager } = await import("sip.js");
  // The package version: sip.js 0.21.2 still reports LIBRARY_VERSION "0.21.1".
  const version = createRequire(import.meta.url)("sip.js/package.json").version;

  const keepaliveReply = deferred();
  const received = deferred();
  let keepaliveReplies = 0;

  const ua = new UserAgent({
    uri: UserAgent.makeURI(`sip:${name}@${opts.domain}`),
    displayName: name,
    transportOptions: {
      server: opts.server,
      connectionTimeout: 5,
      keepAliveInterval: opts.keepalive,
      // Needed to see the CRLF keep-alive answers; the traces only reach stderr with --trace.
      traceSip: true
    },
    logBuiltinEnabled: false,
    logConfiguration: false,
    logLevel: "log",
    logConnector: (level, category, label, content) => {
      if (/CRLF Keep Alive response/.test(content)) {
        keepaliveReplies++;
        emit({ ua: name, event: "keepalive-reply", count: keepaliveReplies });
        keepaliveReply.resolve();
      }
      trace(opts.trace || level === "error", `[${name} ${level} ${category}]`, content);
    },
    // No sessions in this scenario; make any attempt fail loudly.
    sessionDescriptionHandlerFactory: () => {
      throw new Error("no media in this test");
    },
    delegate: {
      onMessage: (message) => {
        const request = message.request;
        message.accept();
        received.resolve({ body: request.body, from: request.from.uri.toString() });
      }
    }
  });

  ua.transport.stateChange.addListener((state) => {
    emit({ ua: name, event: String(state).toLowerCase() });
  });

  let registerer;

  // Settles with the final status of a request made through a requestDelegate.
  function statusOf(start) {
    return new Promise((resolve, reject) => {
      start({
        onAccept: (response) => resolve(response.message.statusCode),
        onReject: (response) => resolve(response.message.statusCode)
      }).catch(reject);
    });
  }

  return {
    lib: `sip.js ${version}`,
    async connect() {
      await ua.start();
    },
    async register() {
      registerer = new Registerer(ua, { expires: 300 });
      return statusOf((requestDelegate) => registerer.register({ requestDelegate }));
    },
    async options() {
      const core = ua.userAgentCore;
      const target = UserAgent.makeURI(`sip:${opts.domain}`);
      const request = core.makeOutgoingRequestMessage("OPTIONS", target, ua.configuration.uri, target, {});
      return new Promise((resolve) => {
        core.request(request, {
          onAccept: (response) => resolve(response.message.statusCode),
          onReject: (response) => resolve(response.message.statusCode)
        });
      });
    },
    async message(target, body) {
      const messager = new Messager(ua, UserAgent.makeURI(target), body, "text/plain; charset=utf-8");
      return statusOf((requestDelegate) => messager.message({ requestDelegate }));
    },
    received: received.promise,
    keepaliveReply: keepaliveReply.promise,
    async unregister() {
      return statusOf((requestDelegate) => registerer.unregister({ requestDelegate }));
    },
    async disconnect() {
      await ua.stop();
    }
  };
}

// ---- JsSIP 3.x ---------------------------------------------------------------------------

async function makeJssipClient(name, opts) {
  const require = createRequire(import.meta.url);
  const JsSIP = require("jssip");

  const keepaliveReply = deferred();
  const received = deferred();
  let keepaliveReplies = 0;
  let keepaliveTimer;

  // JsSIP sends no keep-alives of its own (it only answers the server's): this socket sends
  // CRLFCRLF every ~N s while connected and reports the server's CRLF answers.
  class KeepAliveSocket extends JsSIP.WebSocketInterface {
    _onOpen() {
      super._onOpen();
      if (opts.keepalive > 0 && !keepaliveTimer) {
        keepaliveTimer = setInterval(() => {
          trace(opts.trace, `[${name}] sending CRLF keep-alive`);
          this.send("\r\n\r\n");
        }, opts.keepalive * 1000);
      }
    }
    _onClose(event) {
      clearInterval(keepaliveTimer);
      keepaliveTimer = undefined;
      super._onClose(event);
    }
    _onMessage(event) {
      const data = event.data;
      if (typeof data === "string") {
        trace(opts.trace, `[${name}] received:\n${data}`);
      }
      if (data === "\r\n") {
        keepaliveReplies++;
        emit({ ua: name, event: "keepalive-reply", count: keepaliveReplies });
        keepaliveReply.resolve();
      }
      super._onMessage(event);
    }
    send(message) {
      trace(opts.trace && message !== "\r\n\r\n", `[${name}] sending:\n${message}`);
      return super.send(message);
    }
  }

  const socket = new KeepAliveSocket(opts.server);
  const ua = new JsSIP.UA({
    sockets: [socket],
    uri: `sip:${name}@${opts.domain}`,
    display_name: name,
    register: false,
    register_expires: 300,
    session_timers: false,
    user_agent: `sofia-ws interop (JsSIP ${JsSIP.version})`
  });

  let connected = deferred();
  let disconnected = deferred();
  ua.on("connecting", () => emit({ ua: name, event: "connecting" }));
  ua.on("connected", () => {
    emit({ ua: name, event: "connected" });
    connected.resolve();
  });
  ua.on("disconnected", (e) => {
    emit({ ua: name, event: "disconnected", error: Boolean(e && e.error), code: e ? e.code : undefined });
    connected.reject(new StepError(`${name}: WebSocket connection failed (code ${e ? e.code : "?"})`));
    disconnected.resolve();
  });
  ua.on("newMessage", (e) => {
    if (e.originator !== "remote") {
      return;
    }
    e.message.accept();
    received.resolve({ body: e.request.body, from: e.request.from.uri.toString() });
  });

  function once(events) {
    return new Promise((resolve) => {
      const handlers = {};
      for (const [event, map] of Object.entries(events)) {
        handlers[event] = (e) => {
          for (const [other, handler] of Object.entries(handlers)) {
            ua.removeListener(other, handler);
          }
          resolve(map(e));
        };
        ua.on(event, handlers[event]);
      }
    });
  }

  const statusOrCause = (e) => (e && e.response ? e.response.status_code : `no response (${e && e.cause})`);

  function request(send) {
    return new Promise((resolve) => {
      send({
        succeeded: (e) => resolve(e.response.status_code),
        failed: (e) => resolve(statusOrCause(e))
      });
    });
  }

  return {
    lib: `JsSIP ${JsSIP.version}`,
    async connect() {
      connected = deferred();
      ua.start();
      await connected.promise;
    },
    async register() {
      const result = once({ registered: statusOrCause, registrationFailed: statusOrCause });
      ua.register();
      return result;
    },
    async options() {
      // A plain "sip:127.0.0.1" string would be "normalized" into sip:127001@127.0.0.1.
      const target = new JsSIP.URI("sip", null, opts.domain);
      return request((eventHandlers) => ua.sendOptions(target, null, { eventHandlers }));
    },
    async message(target, body) {
      return request((eventHandlers) =>
        ua.sendMessage(target, body, { contentType: "text/plain; charset=utf-8", eventHandlers })
      );
    },
    received: received.promise,
    keepaliveReply: keepaliveReply.promise,
    async unregister() {
      const result = once({ unregistered: statusOrCause });
      ua.unregister();
      return result;
    },
    async disconnect() {
      clearInterval(keepaliveTimer);
      keepaliveTimer = undefined;
      disconnected = deferred();
      ua.stop();
      await disconnected.promise;
    }
  };
}

// ---- scenario ----------------------------------------------------------------------------

async function step(name, fn) {
  currentStep = name;
  try {
    return await fn();
  } catch (e) {
    if (e instanceof StepError) {
      throw e;
    }
    process.stderr.write(`${name}: ${e && e.stack ? e.stack : e}\n`);
    throw new StepError(`${name}: ${e && e.message ? e.message : e}`);
  }
}

async function main() {
  const make = options.lib === "sipjs" ? makeSipjsClient : makeJssipClient;
  const alice = await make("alice", options);
  const bob = await make("bob", options);

  emit({
    event: "start",
    lib: alice.lib,
    node: process.version,
    websocket: websocketImpl,
    server: options.server,
    domain: options.domain
  });

  await step("connect", () => Promise.all([alice.connect(), bob.connect()]));

  for (const [name, ua] of [["alice", alice], ["bob", bob]]) {
    const status = await step(`${name} register`, () => ua.register());
    emit({ ua: name, step: "register", status });
    expectStatus(name, "REGISTER", status);
  }

  if (options.keepalive > 0) {
    await step("keepalive", () =>
      Promise.all(
        [["alice", alice], ["bob", bob]].map(async ([name, ua]) => {
          await ua.keepaliveReply;
          emit({ ua: name, step: "keepalive", status: "answered" });
        })
      )
    );
  }

  const optionsStatus = await step("alice options", () => alice.options());
  emit({ ua: "alice", step: "options", status: optionsStatus });
  expectStatus("alice", "OPTIONS", optionsStatus);

  // Non-ASCII on purpose: RFC 7118 text frames are UTF-8.
  const body = `hello bob, from alice over ${options.lib} (\u00e9\u20ac) ${randomBytes(4).toString("hex")}`;
  const messageStatus = await step("alice message", () => alice.message(`sip:bob@${options.domain}`, body));
  emit({ ua: "alice", step: "message", status: messageStatus });
  expectStatus("alice", "MESSAGE", messageStatus);

  const got = await step("bob message-received", () => bob.received);
  emit({ ua: "bob", step: "message-received", body: got.body, from: got.from });
  if (got.body !== body) {
    throw new StepError(`bob: MESSAGE body ${JSON.stringify(got.body)}, expected ${JSON.stringify(body)}`);
  }
  if (!got.from.startsWith("sip:alice@")) {
    throw new StepError(`bob: MESSAGE from ${got.from}, expected sip:alice@...`);
  }

  for (const [name, ua] of [["alice", alice], ["bob", bob]]) {
    const status = await step(`${name} unregister`, () => ua.unregister());
    emit({ ua: name, step: "unregister", status });
    expectStatus(name, "unREGISTER", status);
  }

  await step("disconnect", () => Promise.all([alice.disconnect(), bob.disconnect()]));
  emit({ step: "disconnect", status: "done" });
}

main().then(
  () => {
    clearTimeout(globalTimer);
    finish(EXIT_OK);
  },
  (e) => finish(EXIT_FAIL, e instanceof StepError ? e.message : e && e.stack ? e.stack : e)
);

// SPDX-License-Identifier: LGPL-2.1-or-later
//
// alice, the SIP.js 0.21 client of the demo (examples/demo/demo.py starts it).
//
//   node alice.mjs --server ws://127.0.0.1:PORT/ --node-dir tests/interop/node \
//                  [--domain 127.0.0.1] [--to sip:bob@127.0.0.1] [--body TEXT] [--timeout S]
//                  [--expect-reply]
//
// Connects, REGISTERs as sip:alice@DOMAIN, sends a MESSAGE with TEXT to --to (again after a
// short pause while the answer is 404 or 480: bob may not be registered yet) and expects 200,
// with --expect-reply, waits for a MESSAGE sent back to it (answered 200, its body printed as
// "MESSAGE from <uri>: <body>"); unREGISTERs and disconnects. Prints one line per transport event ("event: connected"), per
// WebSocket message ("sent: REGISTER sip:... SIP/2.0", "received: SIP/2.0 200 OK") and per SIP
// step ("MESSAGE to sip:bob@...: 200 OK"). The node_modules holding sip.js and ws are those of
// --node-dir (or $SOFIA_WS_NODE_DIR).
//
// Exit status: 0 every step succeeded, 1 a step failed, 2 bad usage, 3 timeout.

import { parseArgs } from "node:util";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

function say(line) {
  process.stdout.write(line + "\n");
}

function fail(code, message) {
  say(`FAILED: ${message}`);
  process.exit(code);
}

let args;
try {
  args = parseArgs({
    options: {
      server: { type: "string" },
      "node-dir": { type: "string", default: process.env.SOFIA_WS_NODE_DIR },
      domain: { type: "string", default: "127.0.0.1" },
      to: { type: "string" },
      body: { type: "string", default: "hello bob, from alice" },
      timeout: { type: "string", default: "20" },
      "expect-reply": { type: "boolean", default: false }
    },
    strict: true
  }).values;
} catch (e) {
  fail(2, e.message);
}
if (!args.server || !/^wss?:\/\//.test(args.server)) {
  fail(2, "--server must be a ws:// or wss:// URL");
}
if (!args["node-dir"]) {
  fail(2, "--node-dir (or SOFIA_WS_NODE_DIR) must name the directory holding node_modules");
}
const target = args.to ?? `sip:bob@${args.domain}`;
const timeout = Number(args.timeout);

let step = "start";
process.on("unhandledRejection", (e) => fail(1, `unhandled rejection: ${e && e.stack ? e.stack : e}`));
const timer = setTimeout(() => fail(3, `timeout after ${timeout} s (last step: ${step})`), timeout * 1000);

// sip.js is an ES module: resolve it in --node-dir, then import it by path. ws is CommonJS.
const require = createRequire(join(resolve(args["node-dir"]), "package.json"));
let SIP;
try {
  SIP = await import(pathToFileURL(require.resolve("sip.js")).href);
  // Node 20 has no WebSocket global; SIP.js constructs `new WebSocket(url, "sip")`.
  globalThis.WebSocket ??= require("ws").WebSocket;
} catch (e) {
  fail(2, `cannot load sip.js and ws from ${args["node-dir"]} (run \`npm ci\` there): ${e.message}`);
}
const { UserAgent, Registerer, Messager } = SIP;
const version = require("sip.js/package.json").version;

// The first line of a SIP message, for the "sent:"/"received:" lines.
const firstLine = (text) => text.replace(/^\s+/, "").split(/\r?\n/, 1)[0];

const ua = new UserAgent({
  uri: UserAgent.makeURI(`sip:alice@${args.domain}`),
  displayName: "alice",
  transportOptions: { server: args.server, connectionTimeout: 5, traceSip: true },
  logBuiltinEnabled: false,
  logConfiguration: false,
  logLevel: "log",
  // With traceSip, the transport logs every message it sends and receives: the first line of
  // each is printed; the library's warnings and errors too.
  logConnector: (level, category, label, content) => {
    let m;
    if ((m = /^Sending WebSocket message:\s*([\s\S]*)/.exec(content))) {
      say(`sent: ${firstLine(m[1])}`);
    } else if ((m = /^Received WebSocket (?:text|binary) message:\s*([\s\S]*)/.exec(content))) {
      say(`received: ${firstLine(m[1])}`);
    } else if (level === "error" || level === "warn") {
      say(`sip.js ${level}: ${content}`);
    }
  },
  sessionDescriptionHandlerFactory: () => {
    throw new Error("no sessions in this demo");
  },
  delegate: {
    // A MESSAGE for alice: answered 200 (accept()), its body printed.
    onMessage: (message) => {
      message.accept();
      say(`MESSAGE from ${message.request.from.uri}: ${message.request.body}`);
      replied?.();
    }
  }
});

let replied;
const reply = new Promise((resolve) => { replied = resolve; });

ua.transport.stateChange.addListener((state) => say(`event: ${String(state).toLowerCase()}`));

// The final response to a request sent with a requestDelegate: "200 OK", "404 Not Found"...
function finalResponse(send) {
  return new Promise((resolve, reject) => {
    const done = (response) => resolve(response.message);
    send({ onAccept: done, onReject: done }).catch(reject);
  });
}

function expect200(what, response) {
  const text = `${response.statusCode} ${response.reasonPhrase}`;
  say(`${what}: ${text}`);
  if (response.statusCode !== 200) {
    fail(1, `${what}: ${text}, expected 200`);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

try {
  say(`SIP.js ${version} on Node ${process.version}, server ${args.server}`);

  step = "connect";
  await ua.start();

  step = "register";
  const registerer = new Registerer(ua, { expires: 600 });
  expect200(`REGISTER sip:alice@${args.domain}`,
            await finalResponse((requestDelegate) => registerer.register({ requestDelegate })));

  step = "message";
  let response;
  for (let attempt = 1; ; attempt++) {
    const messager = new Messager(ua, UserAgent.makeURI(target), args.body, "text/plain; charset=utf-8");
    response = await finalResponse((requestDelegate) => messager.message({ requestDelegate }));
    if ((response.statusCode !== 404 && response.statusCode !== 480) || attempt === 20) {
      break;
    }
    say(`MESSAGE to ${target}: ${response.statusCode} ${response.reasonPhrase}, trying again`);
    await sleep(250);
  }
  expect200(`MESSAGE to ${target}`, response);

  if (args["expect-reply"]) {
    step = "reply";
    await reply;
  }

  step = "unregister";
  expect200(`unREGISTER sip:alice@${args.domain}`,
            await finalResponse((requestDelegate) => registerer.unregister({ requestDelegate })));

  step = "disconnect";
  await ua.stop();
} catch (e) {
  fail(1, `${step}: ${e && e.message ? e.message : e}`);
}

clearTimeout(timer);
say("done");
process.exit(0);

// SPDX-License-Identifier: LGPL-2.1-or-later
//
// Calls between two SIP-over-WebSocket user agents (alice, bob) through a registrar, on
// SIP.js 0.21 or JsSIP 3.x under Node: signaling only. Node has no WebRTC, so the media side is
// a stand-in that offers and answers a fixed SDP (SIP.js: a SessionDescriptionHandler
// factory; JsSIP: a minimal RTCPeerConnection), which is all the libraries ask of it.
//
//   node sip-call.mjs --lib sipjs|jssip --server ws://127.0.0.1:PORT/ --domain 127.0.0.1
//                     [--timeout S] [--trace]
//
// Scenario: both register; call 1: alice calls bob, bob answers, alice re-INVITEs, sends INFO,
// and hangs up (BYE from the caller); call 2: bob answers and hangs up (BYE from the callee);
// call 3: bob rings (180) and alice cancels before the answer (487); both unregister.
//
// Output: one JSON object per line on stdout, e.g. {"ua":"alice","step":"call1-reinvite",
// "status":200}, and finally {"result":"ok"} or {"result":"fail","error":"..."}.
// Exit status: 0 every step succeeded; 1 a step failed; 2 bad usage; 3 global timeout.

import { parseArgs } from "node:util";
import { createRequire } from "node:module";

const started = Date.now();
let currentStep = "start";

function emit(obj) {
  process.stdout.write(JSON.stringify({ ...obj, ms: Date.now() - started }) + "\n");
}

function finish(code, error) {
  if (code === 0) {
    emit({ result: "ok" });
  } else {
    emit({ result: "fail", step: currentStep, error: String(error && error.stack ? error.stack : error) });
  }
  process.exit(code);
}

let args;
try {
  args = parseArgs({
    options: {
      lib: { type: "string" },
      server: { type: "string" },
      domain: { type: "string", default: "127.0.0.1" },
      timeout: { type: "string", default: "30" },
      trace: { type: "boolean", default: false }
    }
  }).values;
} catch (e) {
  process.stderr.write(`${e.message}\n`);
  process.exit(2);
}
if (!["sipjs", "jssip"].includes(args.lib) || !args.server) {
  process.stderr.write("usage: node sip-call.mjs --lib sipjs|jssip --server ws://127.0.0.1:PORT/ [--domain D] [--timeout S] [--trace]\n");
  process.exit(2);
}

process.on("uncaughtException", (e) => finish(1, e));
process.on("unhandledRejection", (e) => finish(1, e));
setTimeout(() => finish(3, `global timeout (last step: ${currentStep})`), Number(args.timeout) * 1000);

if (typeof globalThis.WebSocket === "undefined") {
  const { WebSocket } = await import("ws");
  globalThis.WebSocket = WebSocket;
}

function trace(...parts) {
  if (args.trace) {
    process.stderr.write(parts.join(" ") + "\n");
  }
}

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

// A queue of events of one kind: next() gives the next one, whenever it came.
function queue() {
  const items = [];
  const waiters = [];
  return {
    push(item) {
      if (waiters.length > 0) {
        waiters.shift()(item);
      } else {
        items.push(item);
      }
    },
    next() {
      if (items.length > 0) {
        return Promise.resolve(items.shift());
      }
      return new Promise((resolve) => waiters.push(resolve));
    }
  };
}

let sdpVersion = 0;
function sdp(name) {
  sdpVersion++;
  return [
    "v=0",
    `o=${name} 1 ${sdpVersion} IN IP4 127.0.0.1`,
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 9 RTP/AVP 0",
    "a=rtpmap:0 PCMU/8000",
    "a=sendrecv",
    ""
  ].join("\r\n");
}

async function step(name, fn) {
  currentStep = name;
  return fn();
}

function expect(what, got, wanted) {
  if (got !== wanted) {
    throw new Error(`${what}: got ${got}, expected ${wanted}`);
  }
}

// ---- SIP.js ------------------------------------------------------------------------------

class FakeSessionDescriptionHandler {
  constructor(name) {
    this.name = name;
  }
  getDescription() {
    return Promise.resolve({ body: sdp(this.name), contentType: "application/sdp" });
  }
  setDescription(body) {
    if (!/^v=0/.test(body)) {
      return Promise.reject(new Error("not an SDP"));
    }
    this.remote = body;
    return Promise.resolve();
  }
  hasDescription(contentType) {
    return contentType === "application/sdp";
  }
  rollbackDescription() {
    return Promise.resolve();
  }
  sendDtmf() {
    return false;
  }
  close() {}
}

async function makeSipjs(name) {
  const SIP = await import("sip.js");
  const { UserAgent, Registerer, Inviter, SessionState } = SIP;
  const invitations = queue();
  const ua = new UserAgent({
    uri: UserAgent.makeURI(`sip:${name}@${args.domain}`),
    displayName: name,
    transportOptions: { server: args.server, connectionTimeout: 5, traceSip: args.trace },
    logBuiltinEnabled: false,
    logLevel: "warn",
    logConnector: (level, category, label, content) => trace(`[${name} ${level}]`, content),
    sessionDescriptionHandlerFactory: () => new FakeSessionDescriptionHandler(name),
    delegate: {
      onInvite: (invitation) => invitations.push(invitation)
    }
  });
  let registerer;

  function status(start) {
    return new Promise((resolve, reject) => {
      start({
        onAccept: (response) => resolve(response.message.statusCode),
        onReject: (response) => resolve(response.message.statusCode)
      }).catch(reject);
    });
  }

  function states(session) {
    const q = queue();
    session.stateChange.addListener((state) => q.push(state));
    return q;
  }

  return {
    name,
    async start() {
      await ua.start();
    },
    async register() {
      registerer = new Registerer(ua, { expires: 300 });
      return status((requestDelegate) => registerer.register({ requestDelegate }));
    },
    async unregister() {
      return status((requestDelegate) => registerer.unregister({ requestDelegate }));
    },
    async stop() {
      await ua.stop();
    },
    // Calls @target; resolves with a call object once the INVITE is sent.
    call(target) {
      const inviter = new Inviter(ua, UserAgent.makeURI(target));
      const changes = states(inviter);
      const progress = deferred();
      const final = deferred();
      inviter.invite({
        requestDelegate: {
          onProgress: (response) => progress.resolve(response.message.statusCode),
          onAccept: (response) => final.resolve(response.message.statusCode),
          onReject: (response) => final.resolve(response.message.statusCode)
        }
      }).catch((e) => final.reject(e));
      return {
        progress: progress.promise,
        final: final.promise,
        async established() {
          for (;;) {
            const state = await changes.next();
            if (state === SessionState.Established) return;
            if (state === SessionState.Terminated) throw new Error("terminated before established");
          }
        },
        async terminated() {
          for (;;) {
            if ((await changes.next()) === SessionState.Terminated) return;
          }
        },
        reinvite() {
          return status((requestDelegate) => inviter.invite({ requestDelegate }));
        },
        info() {
          return status((requestDelegate) => inviter.info({
            requestDelegate,
            requestOptions: { body: { contentDisposition: "render", contentType: "application/dtmf-relay", content: "Signal=5\r\nDuration=160\r\n" } }
          }));
        },
        bye() {
          return status((requestDelegate) => inviter.bye({ requestDelegate }));
        },
        async cancel() {
          await inviter.cancel();
        }
      };
    },
    // The next incoming call.
    async incoming() {
      const invitation = await invitations.next();
      const changes = states(invitation);
      const cancelled = deferred();
      invitation.delegate = { onCancel: () => cancelled.resolve(true) };
      return {
        from: invitation.remoteIdentity.uri.toString(),
        async ring() {
          await invitation.progress();
        },
        async answer() {
          await invitation.accept();
        },
        async established() {
          for (;;) {
            const state = await changes.next();
            if (state === SessionState.Established) return;
            if (state === SessionState.Terminated) throw new Error("terminated before established");
          }
        },
        async terminated() {
          for (;;) {
            if ((await changes.next()) === SessionState.Terminated) return;
          }
        },
        cancelled: cancelled.promise,
        bye() {
          return status((requestDelegate) => invitation.bye({ requestDelegate }));
        }
      };
    }
  };
}

// ---- JsSIP -------------------------------------------------------------------------------

// Just what JsSIP's RTCSession asks of an RTCPeerConnection, with a fixed SDP.
function installFakePeerConnection(name) {
  class FakeRTCPeerConnection extends EventTarget {
    constructor() {
      super();
      this.signalingState = "stable";
      this.iceGatheringState = "complete";
      this.iceConnectionState = "new";
      this.connectionState = "new";
      this.localDescription = null;
      this.remoteDescription = null;
    }
    async createOffer() {
      return { type: "offer", sdp: sdp(name) };
    }
    async createAnswer() {
      return { type: "answer", sdp: sdp(name) };
    }
    async setLocalDescription(description) {
      this.localDescription = description;
      this.signalingState = description.type === "offer" ? "have-local-offer" : "stable";
    }
    async setRemoteDescription(description) {
      if (!/^v=0/.test(description.sdp)) {
        throw new Error("not an SDP");
      }
      this.remoteDescription = description;
      this.signalingState = description.type === "offer" ? "have-remote-offer" : "stable";
    }
    getSenders() { return []; }
    getReceivers() { return []; }
    getLocalStreams() { return []; }
    getRemoteStreams() { return []; }
    addTrack() {}
    addStream() {}
    close() { this.signalingState = "closed"; }
  }
  // JsSIP looks for it on window.
  globalThis.window = globalThis;
  globalThis.RTCPeerConnection = FakeRTCPeerConnection;
  globalThis.RTCSessionDescription = class { constructor(init) { Object.assign(this, init); } };
}

async function makeJssip(name) {
  const require = createRequire(import.meta.url);
  const JsSIP = require("jssip");
  installFakePeerConnection(name);
  const invitations = queue();
  const socket = new JsSIP.WebSocketInterface(args.server);
  const ua = new JsSIP.UA({
    sockets: [socket],
    uri: `sip:${name}@${args.domain}`,
    display_name: name,
    register: false,
    register_expires: 300,
    session_timers: false
  });
  if (args.trace) {
    JsSIP.debug.enable("JsSIP:*");
  }
  const options = { mediaConstraints: { audio: false, video: false }, pcConfig: { iceServers: [] } };
  ua.on("newRTCSession", (e) => {
    if (e.originator === "remote") {
      invitations.push(e.session);
    }
  });

  function events(session) {
    const q = queue();
    for (const kind of ["progress", "accepted", "confirmed", "ended", "failed"]) {
      session.on(kind, (e) => q.push({ kind, e }));
    }
    return q;
  }

  async function until(q, kinds) {
    for (;;) {
      const ev = await q.next();
      if (kinds.includes(ev.kind)) return ev;
      if (ev.kind === "ended" || ev.kind === "failed") {
        throw new Error(`${ev.kind} (${ev.e.cause}) while waiting for ${kinds}`);
      }
    }
  }

  return {
    name,
    async start() {
      const connected = deferred();
      ua.once("connected", () => connected.resolve());
      ua.start();
      await connected.promise;
    },
    register() {
      return new Promise((resolve) => {
        ua.once("registered", (e) => resolve(e.response.status_code));
        ua.once("registrationFailed", (e) => resolve(e.response ? e.response.status_code : 0));
        ua.register();
      });
    },
    unregister() {
      return new Promise((resolve) => {
        ua.once("unregistered", (e) => resolve(e.response ? e.response.status_code : 200));
        ua.unregister();
      });
    },
    async stop() {
      ua.stop();
    },
    call(target) {
      const progress = deferred();
      const final = deferred();
      const session = ua.call(target, {
        ...options,
        eventHandlers: {
          progress: (e) => { if (e.response) progress.resolve(e.response.status_code); },
          accepted: (e) => final.resolve(e.response ? e.response.status_code : 200),
          failed: (e) => final.resolve(e.message && e.message.status_code ? e.message.status_code : e.cause)
        }
      });
      const q = events(session);
      return {
        progress: progress.promise,
        final: final.promise,
        async established() {
          await until(q, ["confirmed"]);
        },
        async terminated() {
          await until(q, ["ended", "failed"]).catch(() => {});
        },
        reinvite() {
          return new Promise((resolve) => {
            const done = session.renegotiate({}, () => resolve(200));
            if (!done) resolve(0);
          });
        },
        info() {
          return new Promise((resolve) => {
            // The Info object reports its response; the session hands it over as it starts.
            session.once("newInfo", (e) => {
              e.info.on("succeeded", (ev) => resolve(ev.response.status_code));
              e.info.on("failed", (ev) => resolve(ev.response ? ev.response.status_code : 0));
            });
            session.sendInfo("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n");
          });
        },
        bye() {
          return new Promise((resolve) => {
            session.once("ended", () => resolve(200));
            session.terminate();
          });
        },
        async cancel() {
          session.terminate();
        }
      };
    },
    async incoming() {
      const session = await invitations.next();
      const q = events(session);
      const cancelled = deferred();
      session.on("failed", (e) => { if (e.cause === JsSIP.C.causes.CANCELED) cancelled.resolve(true); });
      return {
        from: session.remote_identity.uri.toString(),
        async ring() {
          // JsSIP's UAS has sent 180 Ringing on its own already.
        },
        async answer() {
          session.answer(options);
        },
        async established() {
          await until(q, ["confirmed"]);
        },
        async terminated() {
          await until(q, ["ended", "failed"]).catch(() => {});
        },
        cancelled: cancelled.promise,
        bye() {
          return new Promise((resolve) => {
            session.once("ended", () => resolve(200));
            session.terminate();
          });
        }
      };
    }
  };
}

// ---- the scenario ------------------------------------------------------------------------

const make = args.lib === "sipjs" ? makeSipjs : makeJssip;
const alice = await make("alice");
const bob = await make("bob");
const bobUri = `sip:bob@${args.domain}`;

for (const ua of [alice, bob]) {
  await step(`${ua.name} start`, () => ua.start());
  const status = await step(`${ua.name} register`, () => ua.register());
  emit({ ua: ua.name, step: "register", status });
  expect(`${ua.name} REGISTER`, status, 200);
}

// Call 1: the caller re-INVITEs, sends INFO and hangs up.
{
  const call = alice.call(bobUri);
  const incoming = await step("call1 incoming", () => bob.incoming());
  emit({ ua: "bob", step: "call1-incoming", from: incoming.from });
  await incoming.answer();
  expect("call1 INVITE", await step("call1 answer", () => call.final), 200);
  await step("call1 established", () => Promise.all([call.established(), incoming.established()]));
  emit({ ua: "alice", step: "call1-established" });
  // bob may still be taking the ACK in: a re-INVITE then gets 500 (RFC 6337 4.3).
  await new Promise((resolve) => setTimeout(resolve, 300));
  const reinvite = await step("call1 re-INVITE", () => call.reinvite());
  emit({ ua: "alice", step: "call1-reinvite", status: reinvite });
  expect("call1 re-INVITE", reinvite, 200);
  const info = await step("call1 INFO", () => call.info());
  emit({ ua: "alice", step: "call1-info", status: info });
  expect("call1 INFO", info, 200);
  const bye = await step("call1 caller BYE", () => call.bye());
  await step("call1 callee terminated", () => incoming.terminated());
  emit({ ua: "alice", step: "call1-bye", status: bye });
  expect("call1 BYE", bye, 200);
}

// Call 2: the callee hangs up, over the caller's connection.
{
  const call = alice.call(bobUri);
  const incoming = await step("call2 incoming", () => bob.incoming());
  await incoming.answer();
  expect("call2 INVITE", await step("call2 answer", () => call.final), 200);
  await step("call2 established", () => Promise.all([call.established(), incoming.established()]));
  emit({ ua: "bob", step: "call2-established" });
  const bye = await step("call2 callee BYE", () => incoming.bye());
  await step("call2 caller terminated", () => call.terminated());
  emit({ ua: "bob", step: "call2-bye", status: bye });
  expect("call2 BYE", bye, 200);
}

// Call 3: cancelled while ringing.
{
  const call = alice.call(bobUri);
  const incoming = await step("call3 incoming", () => bob.incoming());
  await incoming.ring();
  const ringing = await step("call3 ringing", () => call.progress);
  emit({ ua: "alice", step: "call3-ringing", status: ringing });
  await step("call3 CANCEL", () => call.cancel());
  await step("call3 callee cancelled", () => incoming.cancelled);
  const final = await step("call3 final", () => call.final);
  emit({ ua: "alice", step: "call3-cancelled", status: final });
  if (final !== 487 && final !== "Canceled") {
    throw new Error(`call3: the INVITE ended with ${final}, expected 487`);
  }
}

for (const ua of [alice, bob]) {
  const status = await step(`${ua.name} unregister`, () => ua.unregister());
  emit({ ua: ua.name, step: "unregister", status });
  await ua.stop();
}
finish(0);

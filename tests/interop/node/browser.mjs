// SPDX-License-Identifier: LGPL-2.1-or-later
//
// One SIP.js 0.21 (or JsSIP 3) user agent, as a browser would run it, driven line by line on
// stdin, for the tests of a Sofia NUA program serving browsers (tests/test-nua-browser.c).
//
//   node browser.mjs --server ws://127.0.0.1:PORT/ --user alice [--domain 127.0.0.1]
//                    [--lib sipjs|jssip] [--via-host H.invalid] [--timeout S] [--trace]
//
// With JsSIP it registers, accepts MESSAGEs and quits (its calls need WebRTC, which Node
// lacks).
//
// It connects and REGISTERs, then: accepts every MESSAGE and NOTIFY, answers every INVITE
// (and re-INVITE) with 200 and a fixed SDP (no WebRTC under Node: a session description
// handler that only returns and takes text), and runs these commands:
//   call URI   INVITE URI with a fixed SDP offer
//   ring       from now on, answer INVITEs with 180 only (to be cancelled)
//   bye        hang up the current session
//   quit       stop the user agent and exit 0
// Output: one JSON object per line, e.g. {"event":"registered","status":200,"contact":"..."},
// {"event":"message","body":"..."}, {"event":"invite"}, {"event":"session","state":
// "Established"}, {"event":"call","status":200}. Exit 3 at the global timeout (default 60 s).

import { parseArgs } from "node:util";
import { createInterface } from "node:readline";

const args = parseArgs({
  options: {
    server: { type: "string" },
    user: { type: "string", default: "alice" },
    lib: { type: "string", default: "sipjs" },
    "via-host": { type: "string" },
    domain: { type: "string", default: "127.0.0.1" },
    timeout: { type: "string", default: "60" },
    trace: { type: "boolean", default: false }
  },
  strict: true
}).values;

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

if (!args.server) {
  emit({ event: "fail", error: "--server is required" });
  process.exit(2);
}
setTimeout(() => {
  emit({ event: "fail", error: "global timeout" });
  process.exit(3);
}, Number(args.timeout) * 1000).unref();
process.on("uncaughtException", (e) => {
  emit({ event: "fail", error: String(e && e.stack ? e.stack : e) });
  process.exit(1);
});
process.on("unhandledRejection", (e) => {
  emit({ event: "fail", error: String(e && e.stack ? e.stack : e) });
  process.exit(1);
});

if (typeof globalThis.WebSocket === "undefined") {
  const { WebSocket } = await import("ws");
  globalThis.WebSocket = WebSocket;
}

if (args.lib === "jssip") {
  const { createRequire } = await import("node:module");
  const JsSIP = createRequire(import.meta.url)("jssip");
  const jua = new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(args.server)],
    uri: `sip:${args.user}@${args.domain}`,
    register: false,
    register_expires: 300,
    session_timers: false
  });
  jua.on("newMessage", (e) => {
    if (e.originator === "remote") {
      e.message.accept();
      emit({ event: "message", body: e.request.body, uri: e.request.ruri.toString() });
    }
  });
  jua.on("registered", (e) => emit({ event: "registered", status: e.response.status_code }));
  jua.on("registrationFailed", (e) =>
    emit({ event: "registered", status: e.response ? e.response.status_code : 0 })
  );
  jua.start();
  jua.register();
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === "quit") {
      break;
    }
    emit({ event: "unsupported", command: line.trim() });
  }
  await new Promise((resolve) => {
    jua.on("disconnected", resolve);
    setTimeout(resolve, 3000);
    jua.stop();
  });
  emit({ event: "quit" });
  process.exit(0);
}

const { UserAgent, Registerer, Inviter, SessionState } = await import("sip.js");

const SDP = [
  "v=0",
  "o=- 1 1 IN IP4 127.0.0.1",
  "s=-",
  "c=IN IP4 127.0.0.1",
  "t=0 0",
  "m=audio 9 RTP/AVP 0",
  "a=rtpmap:0 PCMU/8000",
  ""
].join("\r\n");

// Text in, text out: all a session needs when no media flows.
class FixedSdpHandler {
  close() {}
  getDescription() {
    return Promise.resolve({ body: SDP, contentType: "application/sdp" });
  }
  hasDescription(contentType) {
    return contentType === "application/sdp";
  }
  setDescription() {
    return Promise.resolve();
  }
  sendDtmf() {
    return false;
  }
  rollbackDescription() {
    return Promise.resolve();
  }
}

let session;
let ringOnly = false;

function watch(s) {
  session = s;
  s.stateChange.addListener((state) => {
    emit({ event: "session", state: String(state) });
    if (state === SessionState.Terminated && session === s) {
      session = undefined;
    }
  });
  s.delegate = {
    onInvite: (request, response, statusCode) => emit({ event: "reinvite", status: statusCode }),
    onMessage: (message) => {
      message.accept();
      emit({ event: "message", body: message.request.body, uri: message.request.ruri.toString() });
    }
  };
}

const ua = new UserAgent({
  uri: UserAgent.makeURI(`sip:${args.user}@${args.domain}`),
  ...(args["via-host"] ? { viaHost: args["via-host"] } : {}),
  transportOptions: { server: args.server, connectionTimeout: 5, traceSip: args.trace },
  logBuiltinEnabled: args.trace,
  logLevel: args.trace ? "debug" : "error",
  sessionDescriptionHandlerFactory: () => new FixedSdpHandler(),
  delegate: {
    onMessage: (message) => {
      message.accept();
      emit({ event: "message", body: message.request.body, uri: message.request.ruri.toString() });
    },
    onNotify: (notification) => {
      notification.accept();
      emit({ event: "notify", body: notification.request.body });
    },
    onInvite: (invitation) => {
      emit({
        event: "invite",
        from: invitation.remoteIdentity.uri.toString(),
        contact: invitation.request.getHeader("contact")
      });
      watch(invitation);
      if (ringOnly) {
        invitation.progress();
      } else {
        invitation.accept();
      }
    }
  }
});

await ua.start();
const registerer = new Registerer(ua, { expires: 300 });
const status = await new Promise((resolve, reject) => {
  registerer
    .register({
      requestDelegate: {
        onAccept: (r) => resolve(r.message.statusCode),
        onReject: (r) => resolve(r.message.statusCode)
      }
    })
    .catch(reject);
});
emit({ event: "registered", status, contact: ua.contact.uri.toString() });

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const [command, argument] = line.trim().split(/\s+/, 2);
  if (command === "call") {
    const inviter = new Inviter(ua, UserAgent.makeURI(argument));
    watch(inviter);
    inviter
      .invite({
        requestDelegate: {
          onAccept: (r) =>
            emit({ event: "call", status: r.message.statusCode, contact: r.message.getHeader("contact") }),
          onReject: (r) => emit({ event: "call", status: r.message.statusCode })
        }
      })
      .catch((e) => emit({ event: "call", status: 0, error: String(e) }));
  } else if (command === "ring") {
    ringOnly = true;
    emit({ event: "ring" });
  } else if (command === "bye") {
    if (session) {
      session.bye().catch((e) => emit({ event: "bye", error: String(e) }));
    } else {
      emit({ event: "bye", error: "no session" });
    }
  } else if (command === "quit") {
    await ua.stop();
    emit({ event: "quit" });
    process.exit(0);
  }
}
// stdin closed: the test went away.
await ua.stop();
process.exit(0);

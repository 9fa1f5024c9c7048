// SPDX-License-Identifier: LGPL-2.1-or-later
//
// window.phone on SIP.js 0.21 (the UserAgent API and its web SessionDescriptionHandler): the
// same calls as jssip-phone.js, driven by browser-suite.mjs through page.evaluate().
//
//   start({server, user, domain})  connect and REGISTER; the final status
//   send(user, body)               a MESSAGE to sip:user@domain; the final status
//   nextMessage()                  the next MESSAGE received: {from, body}
//   call(user)                     INVITE sip:user@domain: {status} once established or rejected
//   nextCall()                     the next INVITE received: {from}
//   answer()                       200 it; resolves once the ACK is in (established)
//   hangup()                       BYE; the final status
//   ended()                        resolves once the session ends: {by: "local"|"remote"}
//   media()                        {remoteTracks, bytesReceived, packetsReceived} (inbound-rtp
//                                  audio)
//   stop()                         unREGISTER and disconnect

import { Inviter, Messager, Registerer, SessionState, UserAgent } from "sip.js";

const constraints = { audio: true, video: false };
let ua = null;
let registerer = null;
let domain = null;
let session = null;
let endedBy = null;
const messages = [];
const invitations = [];
const waiters = { message: [], invite: [], ended: [] };

function log(...parts) {
  console.log("[sipjs]", ...parts);
}

function wake(kind) {
  for (const resolve of waiters[kind].splice(0))
    resolve();
}

function waitFor(kind, ready) {
  return new Promise((resolve) => {
    const check = () => (ready() ? resolve() : waiters[kind].push(check));
    check();
  });
}

// The final status of a request sent with a requestDelegate.
function statusOf(start) {
  return new Promise((resolve, reject) => {
    start({
      onAccept: (response) => resolve(response.message.statusCode),
      onReject: (response) => resolve(response.message.statusCode)
    }).catch(reject);
  });
}

function track(s) {
  session = s;
  endedBy = null;
  s.stateChange.addListener((state) => {
    log("session", state);
    if (state === SessionState.Terminated) {
      endedBy = endedBy ?? "remote";
      wake("ended");
    }
  });
}

function waitEstablished(s) {
  return new Promise((resolve, reject) => {
    if (s.state === SessionState.Established)
      return resolve();
    s.stateChange.addListener((state) => {
      if (state === SessionState.Established)
        resolve();
      else if (state === SessionState.Terminated)
        reject(new Error("session terminated before it was established"));
    });
  });
}

window.phone = {
  library: "SIP.js",

  async start({ server, user, domain: d }) {
    domain = d;
    ua = new UserAgent({
      uri: UserAgent.makeURI(`sip:${user}@${domain}`),
      displayName: user,
      transportOptions: { server, connectionTimeout: 5, traceSip: true },
      logBuiltinEnabled: false,
      logConfiguration: false,
      logConnector: (level, category, label, content) => log(level, category, content),
      // No STUN: host candidates on this machine only, and a short gathering wait.
      sessionDescriptionHandlerFactoryOptions: {
        iceGatheringTimeout: 500,
        peerConnectionConfiguration: { iceServers: [] }
      },
      delegate: {
        onMessage: (message) => {
          message.accept();
          messages.push({ from: message.request.from.uri.user, body: message.request.body });
          wake("message");
        },
        onInvite: (invitation) => {
          invitations.push(invitation);
          wake("invite");
        }
      }
    });
    await ua.start();
    registerer = new Registerer(ua, { expires: 300, logConfiguration: false });
    return statusOf((requestDelegate) => registerer.register({ requestDelegate }));
  },

  send(user, body) {
    const messager = new Messager(ua, UserAgent.makeURI(`sip:${user}@${domain}`), body);
    return statusOf((requestDelegate) => messager.message({ requestDelegate }));
  },

  async nextMessage() {
    await waitFor("message", () => messages.length > 0);
    return messages.shift();
  },

  call(user) {
    const inviter = new Inviter(ua, UserAgent.makeURI(`sip:${user}@${domain}`), {
      sessionDescriptionHandlerOptions: { constraints }
    });
    track(inviter);
    return new Promise((resolve, reject) => {
      inviter
        .invite({
          requestDelegate: {
            onAccept: () => waitEstablished(inviter).then(() => resolve({ status: 200 }), reject),
            onReject: (response) => resolve({ status: response.message.statusCode })
          }
        })
        .catch(reject);
    });
  },

  async nextCall() {
    await waitFor("invite", () => invitations.length > 0);
    const invitation = invitations.shift();
    track(invitation);
    return { from: invitation.remoteIdentity.uri.user };
  },

  async answer() {
    await session.accept({ sessionDescriptionHandlerOptions: { constraints } });
    await waitEstablished(session);
  },

  hangup() {
    endedBy = "local";
    return statusOf((requestDelegate) => session.bye({ requestDelegate }));
  },

  async ended() {
    await waitFor("ended", () => endedBy !== null && session.state === SessionState.Terminated);
    return { by: endedBy };
  },

  async media() {
    const sdh = session?.sessionDescriptionHandler;
    let bytesReceived = 0;
    let packetsReceived = 0;
    if (!sdh?.peerConnection)
      return { remoteTracks: 0, bytesReceived, packetsReceived };
    const stats = await sdh.peerConnection.getStats();
    stats.forEach((report) => {
      if (report.type === "inbound-rtp" && report.kind === "audio") {
        bytesReceived += report.bytesReceived ?? 0;
        packetsReceived += report.packetsReceived ?? 0;
      }
    });
    const remoteTracks = sdh.remoteMediaStream
      .getTracks()
      .filter((t) => t.readyState === "live").length;
    return { remoteTracks, bytesReceived, packetsReceived };
  },

  async stop() {
    if (registerer)
      await statusOf((requestDelegate) => registerer.unregister({ requestDelegate }));
    await ua.stop();
  }
};

// SPDX-License-Identifier: LGPL-2.1-or-later
//
// window.phone on JsSIP 3 (window.JsSIP): the same calls as sipjs-phone.mjs (see there), driven
// by browser-suite.mjs through page.evaluate().
"use strict";

(function () {
  const constraints = { audio: true, video: false };
  // No STUN: host candidates on this machine only.
  const pcConfig = { iceServers: [] };
  let ua = null;
  let domain = null;
  let session = null;
  let endedBy = null;
  const messages = [];
  const incoming = [];
  const waiters = { message: [], invite: [], ended: [] };

  function log(...parts) {
    console.log("[jssip]", ...parts);
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

  // JsSIP waits for ICE gathering to complete; with host candidates only, stop waiting 500 ms
  // after the first one.
  function shortIceGathering(s) {
    let timer = null;
    s.on("icecandidate", (event) => {
      if (timer === null)
        timer = setTimeout(() => event.ready(), 500);
    });
  }

  function track(s) {
    session = s;
    endedBy = null;
    shortIceGathering(s);
    for (const name of ["progress", "accepted", "confirmed"])
      s.on(name, () => log("session", name));
    for (const name of ["ended", "failed"])
      s.on(name, (event) => {
        log("session", name, event.originator, event.cause);
        endedBy = event.originator === "local" ? "local" : "remote";
        wake("ended");
      });
  }

  function waitConfirmed(s) {
    return new Promise((resolve, reject) => {
      if (s.isEstablished())
        return resolve();
      s.on("confirmed", () => resolve());
      s.on("failed", (event) => reject(new Error(`session failed: ${event.cause}`)));
    });
  }

  window.phone = {
    library: "JsSIP",

    start({ server, user, domain: d }) {
      domain = d;
      const socket = new JsSIP.WebSocketInterface(server);
      ua = new JsSIP.UA({
        sockets: [socket],
        uri: `sip:${user}@${domain}`,
        display_name: user,
        register: true,
        register_expires: 300
      });
      ua.on("newMessage", (event) => {
        if (event.originator !== "remote")
          return;
        messages.push({ from: event.request.from.uri.user, body: event.request.body });
        wake("message");
      });
      ua.on("newRTCSession", (event) => {
        if (event.originator !== "remote")
          return;
        incoming.push(event.session);
        wake("invite");
      });
      for (const name of ["connected", "disconnected"])
        ua.on(name, () => log("transport", name));
      return new Promise((resolve, reject) => {
        ua.on("registered", (event) => resolve(event.response.status_code));
        // JsSIP would retry for ever: the first loss of the connection before the REGISTER
        // was answered fails the start.
        ua.on("disconnected", (event) => {
          if (!ua.isRegistered())
            reject(new Error(`WebSocket to ${server} closed (${event.code ?? ""} ${event.reason ?? ""})`));
        });
        ua.on("registrationFailed", (event) =>
          resolve(event.response ? event.response.status_code : `failed: ${event.cause}`));
        ua.start();
      });
    },

    send(user, body) {
      return new Promise((resolve) => {
        ua.sendMessage(`sip:${user}@${domain}`, body, {
          eventHandlers: {
            succeeded: (event) => resolve(event.response.status_code),
            failed: (event) => resolve(event.response ? event.response.status_code
                                                      : `failed: ${event.cause}`)
          }
        });
      });
    },

    async nextMessage() {
      await waitFor("message", () => messages.length > 0);
      return messages.shift();
    },

    call(user) {
      return new Promise((resolve, reject) => {
        const s = ua.call(`sip:${user}@${domain}`, {
          mediaConstraints: constraints,
          pcConfig,
          eventHandlers: {
            confirmed: () => resolve({ status: 200 }),
            failed: (event) => {
              if (event.originator === "remote" && event.message)
                resolve({ status: event.message.status_code });
              else
                reject(new Error(`call failed (${event.originator}): ${event.cause}`));
            }
          }
        });
        track(s);
      });
    },

    async nextCall() {
      await waitFor("invite", () => incoming.length > 0);
      const s = incoming.shift();
      track(s);
      return { from: s.remote_identity.uri.user };
    },

    async answer() {
      const confirmed = waitConfirmed(session);
      session.answer({ mediaConstraints: constraints, pcConfig });
      await confirmed;
    },

    // JsSIP reports no status for its BYE: 200 once the session has ended locally (the suite
    // checks the BYE's 200 in the registrar's output).
    async hangup() {
      endedBy = "local";
      session.terminate();
      await waitFor("ended", () => session.isEnded());
      return 200;
    },

    async ended() {
      await waitFor("ended", () => endedBy !== null && session.isEnded());
      return { by: endedBy };
    },

    async media() {
      const pc = session && session.connection;
      let bytesReceived = 0;
      let packetsReceived = 0;
      if (!pc)
        return { remoteTracks: 0, bytesReceived, packetsReceived };
      const stats = await pc.getStats();
      stats.forEach((report) => {
        if (report.type === "inbound-rtp" && report.kind === "audio") {
          bytesReceived += report.bytesReceived || 0;
          packetsReceived += report.packetsReceived || 0;
        }
      });
      const remoteTracks = pc.getReceivers()
        .filter((r) => r.track && r.track.readyState === "live").length;
      return { remoteTracks, bytesReceived, packetsReceived };
    },

    stop() {
      return new Promise((resolve) => {
        ua.on("unregistered", () => { ua.stop(); resolve(); });
        ua.unregister();
      });
    }
  };
})();

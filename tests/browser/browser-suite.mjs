// SPDX-License-Identifier: LGPL-2.1-or-later
//
// The real-browser suite: SIP.js 0.21 and JsSIP 3 in headless Chromium (Debian's, driven by
// puppeteer-core: no browser download), through examples/sofia-ws-registrar (NTA),
// examples/sofia-ws-nua-pbx (NUA, bridging the calls) and sofia-ws-edge (in front of Kamailio as
// a plain SIP registrar and proxy over tcp) over ws and wss.
//
//   SOFIA_WS_REGISTRAR=_build/examples/sofia-ws-registrar \
//   SOFIA_WS_NUA_PBX=_build/examples/sofia-ws-nua-pbx SOFIA_WS_EDGE=_build/examples/sofia-ws-edge \
//   SOFIA_WS_KAMAILIO_PEER=_build/tests/kamailio-peer-run SOFIA_WS_PLUGIN_DIR=_build/plugin \
//     node tests/browser/browser-suite.mjs
//   (or: meson test -C _build browser -v)
//
// Two pages per scenario, each a phone on one library (pages/), served from 127.0.0.1 by
// static-server.mjs; they REGISTER, exchange MESSAGEs both ways, and call each other with
// Chromium's fake microphone (the media must flow both ways: inbound-rtp bytes on both pages),
// through the registrar, through the NUA pbx and through the edge and Kamailio (the
// configuration of tests/support/kamailio-peer.c, run by kamailio-peer-run); a browser hangs
// up, or the pbx (`hangup` on its stdin).
// For wss the suite makes a CA and a certificate for 127.0.0.1 signed by it (openssl), and
// trusts the CA in the NSS database of a $HOME of its own, which is where headless Chromium on
// Linux looks: certificate verification stays on (a scenario checks that an untrusted issuer is
// refused).
//
// Output: TAP, one point per scenario; a scenario that cannot run says why (# SKIP). Bounded:
// each scenario has its own timeout and the whole suite stops within 150 s. Every process it
// starts (the registrars, the pbx, Chromium) is stopped by its PID, and its temporary files
// removed. Environment: SOFIA_WS_REGISTRAR and SOFIA_WS_NUA_PBX (required), SOFIA_WS_EDGE and
// SOFIA_WS_KAMAILIO_PEER (without them, or without Kamailio, the edge's scenarios skip),
// SOFIA_WS_CHROMIUM (default /usr/bin/chromium), SOFIA_WS_BROWSER_TRACE=1 prints every page,
// registrar, pbx and edge line as TAP comments; SOFIA_WS_BROWSER_VALGRIND=1 runs the
// registrars, the pbx and the edge under memcheck; SOFIA_WS_BROWSER_ONLY=REGEX runs only the
// scenarios whose names match (the others are reported skipped, saying so).

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

import { startStaticServer } from "./static-server.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const nodeDir = join(here, "..", "interop", "node");
const chromium = process.env.SOFIA_WS_CHROMIUM ?? "/usr/bin/chromium";
const registrarPath = process.env.SOFIA_WS_REGISTRAR;
const pbxPath = process.env.SOFIA_WS_NUA_PBX;
const edgePath = process.env.SOFIA_WS_EDGE;
const kamailioPeerPath = process.env.SOFIA_WS_KAMAILIO_PEER;
const only = process.env.SOFIA_WS_BROWSER_ONLY ? new RegExp(process.env.SOFIA_WS_BROWSER_ONLY) : null;
const trace = process.env.SOFIA_WS_BROWSER_TRACE === "1";
const valgrind = process.env.SOFIA_WS_BROWSER_VALGRIND === "1";

const SUITE_BUDGET_MS = 150_000;
const MESSAGE_TIMEOUT_MS = 15_000;
const CALL_TIMEOUT_MS = 25_000;
const MEDIA_WAIT_MS = 10_000;
const MEDIA_PACKETS = 10;
const NOT_RELAYED = "registrar does not relay INVITE";

const started = Date.now();
const deadline = started + SUITE_BUDGET_MS;

// ---- TAP ---------------------------------------------------------------------------------

let point = 0;
let failures = 0;

function diag(text) {
  for (const line of String(text).split("\n"))
    process.stdout.write(`# ${line}\n`);
}

function report(name, outcome, detail = []) {
  point++;
  if (outcome.skip !== undefined) {
    process.stdout.write(`ok ${point} - ${name} # SKIP ${outcome.skip}\n`);
  } else if (outcome.ok) {
    process.stdout.write(`ok ${point} - ${name}\n`);
  } else {
    failures++;
    process.stdout.write(`not ok ${point} - ${name}\n`);
    diag(outcome.error);
    if (detail.length > 0) {
      diag("the last lines of the pages, the registrar and the pbx:");
      diag(detail.slice(-60).join("\n"));
    }
  }
}

function skipAll(reason) {
  process.stdout.write(`1..0 # SKIP ${reason}\n`);
  process.exit(0);
}

// ---- what the suite needs ----------------------------------------------------------------

if (!existsSync(chromium))
  skipAll(`no Chromium at ${chromium} (Debian package chromium)`);
if (!registrarPath || !existsSync(registrarPath))
  skipAll("SOFIA_WS_REGISTRAR is not set to the built sofia-ws-registrar");
if (!pbxPath || !existsSync(pbxPath))
  skipAll("SOFIA_WS_NUA_PBX is not set to the built sofia-ws-nua-pbx");
for (const [program, pkg] of [["certutil", "libnss3-tools"], ["openssl", "openssl"]])
  if (spawnSync(program, ["--help"], { stdio: "ignore" }).error)
    skipAll(`${program} not found (Debian package ${pkg})`);

let puppeteer;
try {
  puppeteer = createRequire(join(nodeDir, "package.json"))("puppeteer-core");
} catch {
  skipAll(`puppeteer-core is not installed (npm ci in ${nodeDir})`);
}

// ---- temporary files, processes, cleanup -------------------------------------------------

const tmp = mkdtempSync(join(tmpdir(), "sofia-ws-browser-"));
const children = new Set(); // {name, process}
let browser = null;
let server = null;

function emergencyCleanup() {
  const pid = browser?.process()?.pid;
  if (pid) {
    try {
      process.kill(-pid, "SIGKILL"); // its process group: puppeteer starts it detached
    } catch {
      try { process.kill(pid, "SIGKILL"); } catch { /* gone */ }
    }
  }
  for (const child of children) {
    try { process.kill(child.process.pid, "SIGKILL"); } catch { /* gone */ }
  }
  rmSync(tmp, { recursive: true, force: true });
}

// Whatever way this process ends (an exception, stdout closed), nothing it started is left.
process.on("exit", emergencyCleanup);
process.stdout.on("error", () => process.exit(1));
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    diag(`stopped by ${signal}`);
    emergencyCleanup();
    process.exit(1);
  });
}

// A page call left waiting when its scenario failed rejects once its page is closed: nothing to
// report then (the scenario already did).
process.on("unhandledRejection", (e) => {
  if (trace)
    diag(`(ignored) ${e}`);
});

// The backstop, should a step hang past every timeout.
const watchdog = setTimeout(() => {
  process.stdout.write(`Bail out! the suite did not finish within ${SUITE_BUDGET_MS / 1000 + 5} s\n`);
  emergencyCleanup();
  process.exit(1);
}, SUITE_BUDGET_MS + 5_000);
watchdog.unref();

function run(program, args, options = {}) {
  const result = spawnSync(program, args, { encoding: "utf8", ...options });
  if (result.error || result.status !== 0)
    throw new Error(`${program} ${args.join(" ")} failed: ${result.error ?? result.stderr}`);
  return result.stdout;
}

// ---- certificates ------------------------------------------------------------------------

// A CA, a certificate for 127.0.0.1 it signed, and a self-signed one nobody trusts.
function makeCertificates(dir) {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  writeFileSync(join(dir, "ca.cnf"), [
    "[req]", "distinguished_name = dn", "[dn]",
    "[ca]", "basicConstraints = critical,CA:TRUE", "keyUsage = critical,keyCertSign,cRLSign",
    "subjectKeyIdentifier = hash",
    "[server]", "basicConstraints = critical,CA:FALSE", "keyUsage = critical,digitalSignature",
    "extendedKeyUsage = serverAuth", "subjectAltName = IP:127.0.0.1",
    "subjectKeyIdentifier = hash", "authorityKeyIdentifier = keyid", ""
  ].join("\n"));
  const opts = { cwd: dir };
  run("openssl", ["req", "-x509", ...ec, "-config", "ca.cnf", "-extensions", "ca", "-days", "2",
                  "-subj", "/CN=sofia-ws browser suite CA", "-keyout", "ca.key", "-out", "ca.pem"],
      opts);
  run("openssl", ["req", ...ec, "-config", "ca.cnf", "-subj", "/CN=127.0.0.1",
                  "-keyout", "server.key", "-out", "server.csr"], opts);
  run("openssl", ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                  "-CAcreateserial", "-days", "2", "-extfile", "ca.cnf", "-extensions", "server",
                  "-out", "server.pem"], opts);
  run("openssl", ["req", "-x509", ...ec, "-config", "ca.cnf", "-extensions", "server",
                  "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", "untrusted.key",
                  "-out", "untrusted.pem"], opts);
  return {
    ca: join(dir, "ca.pem"),
    server: { certificate: join(dir, "server.pem"), key: join(dir, "server.key") },
    untrusted: { certificate: join(dir, "untrusted.pem"), key: join(dir, "untrusted.key") }
  };
}

// The NSS database of `home`, trusting `ca` to issue server certificates (trust "C,,").
function trustInNss(home, ca) {
  const db = join(home, ".pki", "nssdb");
  mkdirSync(db, { recursive: true });
  run("certutil", ["-d", `sql:${db}`, "-N", "--empty-password"]);
  run("certutil", ["-d", `sql:${db}`, "-A", "-t", "C,,", "-n", "sofia-ws browser suite CA",
                   "-i", ca]);
}

// ---- the registrar and the pbx -----------------------------------------------------------

// Starts `program` (sofia-ws-registrar or sofia-ws-nua-pbx) with `args`; resolves once it
// printed one "listening" line per --listen: {ports: {ws: N, wss: N}, say(line), stop()}; each
// line it prints goes to `log` as "NAME: line". say() writes a command line on its stdin.
// With SOFIA_WS_BROWSER_VALGRIND=1 it runs under memcheck (suppressions from
// $SOFIA_WS_VALGRIND_SUPPRESSIONS): an error or a definite leak makes it exit 99.
// kamailio-peer-run (`plain`: never under memcheck, one "listening" line) says
// "unavailable: REASON" where Kamailio is not installed: the promise rejects with {skip}.
function startServer(name, program, args, log, plain = false) {
  const suppressions = (process.env.SOFIA_WS_VALGRIND_SUPPRESSIONS ?? "").split(":").filter(Boolean);
  const argv = valgrind && !plain
    ? ["valgrind", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
       "--show-leak-kinds=definite", ...suppressions.map((f) => `--suppressions=${f}`),
       program, ...args]
    : [program, ...args];
  // stdin a pipe: the pbx reads its commands there, and ends when it closes.
  const child = spawn(argv[0], argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
  child.stdin.on("error", (e) => log(`${name} (stdin): ${e.message}`));
  const entry = { name, process: child };
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const wanted = plain ? 1 : args.filter((a) => a === "--listen").length;
  const ports = {};
  children.add(entry);

  const lines = createInterface({ input: child.stdout });
  createInterface({ input: child.stderr }).on("line", (line) => log(`${name} (stderr): ${line}`));

  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: no "listening" lines in 20 s`)), 20_000);
    lines.on("line", (line) => {
      log(`${name}: ${line}`);
      if (line.startsWith("unavailable: ")) {
        clearTimeout(timer);
        reject(Object.assign(new Error(line), { skip: line.slice("unavailable: ".length) }));
      }
      const m = /^listening sips?:.*:(\d+);transport=(\w+)$/.exec(line);
      if (m) {
        ports[m[2]] = Number(m[1]);
        if (Object.keys(ports).length === wanted) {
          clearTimeout(timer);
          resolve();
        }
      }
    });
    exited.then(({ code, signal }) => reject(new Error(`${name} exited (${code ?? signal})`)));
  });

  return ready.then(() => ({
    ports,
    say(line) {
      child.stdin.write(`${line}\n`);
    },
    // SIGTERM; it must exit 0 within 10 s.
    async stop() {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const { code, signal } = await exited;
      clearTimeout(timer);
      children.delete(entry);
      if (code !== 0)
        throw new Error(`${name} exited with ${code ?? signal} on SIGTERM`);
    }
  }), (e) => {
    child.kill("SIGKILL");
    children.delete(entry);
    throw e;
  });
}

// ---- pages -------------------------------------------------------------------------------

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s: ${what}`)), ms);
    })
  ]).finally(() => clearTimeout(timer));
}

// A page running the phone of `lib` ("sipjs" or "jssip"); its console goes to `log`.
async function openPhone(lib, label, log) {
  const page = await browser.newPage();
  page.on("console", (message) => log(`${label}: ${message.text()}`));
  page.on("pageerror", (error) => log(`${label} (page error): ${error.message}`));
  page.on("requestfailed", (request) =>
    log(`${label} (request failed): ${request.url()} ${request.failure()?.errorText}`));
  await page.goto(`${server.origin}/${lib}.html`, { waitUntil: "load", timeout: 10_000 });
  await page.waitForFunction(() => window.phone !== undefined, { timeout: 10_000 });
  // phone.<method>(...args) in the page.
  const call = (method, ...args) =>
    page.evaluate((m, a) => window.phone[m](...a), method, args);
  return { page, lib, label, call };
}

const LIBRARY = { sipjs: "SIP.js", jssip: "JsSIP" };

// Two phones, registered through the `transport` listener of `via` (context.registrar or
// context.pbx).
async function registeredPair(a, b, transport, context, via = "registrar") {
  const url = `${transport}://127.0.0.1:${context[via].ports[transport]}/`;
  const users = [`alice${point + 1}`, `bob${point + 1}`];
  const phones = [await openPhone(a, `alice (${LIBRARY[a]})`, context.log),
                  await openPhone(b, `bob (${LIBRARY[b]})`, context.log)];
  context.pages.push(...phones.map((p) => p.page));
  for (const [i, phone] of phones.entries()) {
    const status = await phone.call("start", { server: url, user: users[i], domain: "127.0.0.1" });
    if (status !== 200)
      throw new Error(`${phone.label}: REGISTER over ${url} got ${status}`);
    phone.user = users[i];
  }
  if (via === "edge") {
    // Each browser's connection to the edge, by the port its REGISTER came from (alice
    // registered first): the edge's lines name it.
    const ports = context.serverOutput
      .map((line) => /^edge: REGISTER from WSS? 127\.0\.0\.1:(\d+): to the upstream$/.exec(line))
      .filter(Boolean).map((m) => m[1]);
    if (ports.length !== 2)
      throw new Error(`the edge printed ${ports.length} REGISTER lines, expected 2`);
    phones.forEach((phone, i) => { phone.edgePort = ports[i]; });
  }
  return phones;
}

async function stopPhones(phones) {
  for (const phone of phones)
    await withTimeout(phone.call("stop"), 5_000, `${phone.label}: unREGISTER`);
}

// REGISTER both, a MESSAGE each way (the registrar relays it over the callee's WebSocket).
async function messageScenario({ a, b, transport }, context) {
  const [alice, bob] = await registeredPair(a, b, transport, context);
  for (const [from, to] of [[alice, bob], [bob, alice]]) {
    const body = `from ${from.user} to ${to.user} over ${transport}: ${Math.random()}`;
    const received = to.call("nextMessage");
    const status = await from.call("send", to.user, body);
    if (status !== 200)
      throw new Error(`${from.label}: MESSAGE to ${to.user} got ${status}`);
    const message = await withTimeout(received, 5_000, `${to.label} receives the MESSAGE`);
    if (message.body !== body || message.from !== from.user)
      throw new Error(`${to.label} received ${JSON.stringify(message)}, expected "${body}" ` +
                      `from ${from.user}`);
  }
  await stopPhones([alice, bob]);
}

// Polls phone.media() on each page until audio came in (a live remote track, and inbound-rtp
// bytes in MEDIA_PACKETS packets at least: 0.2 s of 20 ms frames); returns what each saw.
async function mediaFlows(phones) {
  const until = Date.now() + MEDIA_WAIT_MS;
  let seen = [];
  for (;;) {
    seen = await Promise.all(phones.map((p) => p.call("media")));
    if (seen.every((m) => m.remoteTracks > 0 && m.bytesReceived > 0 &&
                           m.packetsReceived >= MEDIA_PACKETS))
      return seen;
    if (Date.now() > until)
      throw new Error(`no media within ${MEDIA_WAIT_MS / 1000} s: ` +
                      phones.map((p, i) => `${p.label} ${JSON.stringify(seen[i])}`).join(", "));
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

// Waits (3 s at most) for the registrar or the pbx to print `count` lines matching `pattern`
// (their lines start with their names), in this scenario.
async function serverSays(context, pattern, count = 1) {
  const until = Date.now() + 3_000;
  while (context.serverOutput.filter((line) => pattern.test(line)).length < count) {
    if (Date.now() > until)
      throw new Error(`no ${count > 1 ? `${count} lines` : "line"} matching ${pattern} from ` +
                      "the registrar or the pbx");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// What the server printed at each step of a call through it, by the step: the call answered
// (the INVITE, its 200 and the ACK went through), a browser hung up (its BYE went through and
// its 200 came back), the pbx hung up (a BYE to each browser, each answered 200).
const through = {
  registrar: {
    answered: () => [[/^registrar: INVITE relayed: 200 /],
                     [/^registrar: ACK from .*: in dialog, relaying/]],
    hungUp: () => [[/^registrar: BYE relayed: 200 /]]
  },
  pbx: {
    answered: (caller, callee) => [[new RegExp(`^pbx: calling ${callee.user} for ${caller.user}$`)],
                                   [new RegExp(`^pbx: bridged ${caller.user} -> ${callee.user}$`)]],
    hungUp: (hanging) => [[new RegExp(`^pbx: call ended by ${hanging.user}$`)],
                          [/^pbx: hangup 200 /]],
    pbxHungUp: () => [[/^pbx: call ended by the pbx$/], [/^pbx: hangup 200 /, 2]]
  },
  // The edge: the request came in over the sending browser's own WebSocket (its port) and went
  // to Kamailio, came back from Kamailio (tcp) with the other browser's flow token and went on
  // over that browser's connection, and both legs were answered.
  edge: {
    answered: (caller) =>
      [[new RegExp(`^edge: INVITE from WSS? 127\\.0\\.0\\.1:${caller.edgePort}: to the upstream$`)],
       [/^edge: INVITE from tcp 127\.0\.0\.1:\d+: in dialog, relaying$/],
       [/^edge: INVITE relayed: 200 /, 2]],
    hungUp: (hanging) =>
      [[new RegExp(`^edge: BYE from WSS? 127\\.0\\.0\\.1:${hanging.edgePort}: to the upstream$`)],
       [/^edge: BYE from tcp 127\.0\.0\.1:\d+: in dialog, relaying$/],
       [/^edge: BYE relayed: 200 /, 2]]
  }
};

async function serverSaysAll(context, patterns) {
  for (const [pattern, count] of patterns)
    await serverSays(context, pattern, count);
}

// alice calls bob through `via` (the registrar or the pbx), bob answers, audio flows both ways,
// `hangup` ("caller" or "callee") sends the BYE and the other side sees the call ended by the
// remote party, or the pbx hangs up ("pbx") and both see it ended by the remote party; the
// server's lines prove the call went through it (`through`: JsSIP reports no status for its own
// BYE). A registrar that answers the INVITE 405 makes the scenario skip.
async function callScenario({ a, b, transport, hangup, via }, context) {
  if (via === "edge" && !context.edge)
    return { skip: context.edgeSkip };
  const [alice, bob] = await registeredPair(a, b, transport, context, via);
  const ringing = bob.call("nextCall");
  const calling = alice.call("call", bob.user);
  const first = await withTimeout(Promise.race([ringing.then(() => "ringing"), calling]),
                                  10_000, `${bob.label} receives the INVITE`);
  if (first !== "ringing") {
    if (first.status === 405) {
      context.notes.push(`${alice.label}: INVITE answered 405 Method Not Allowed by the registrar`);
      return { skip: NOT_RELAYED };
    }
    throw new Error(`${alice.label}: INVITE to ${bob.user} got ${first.status}`);
  }
  const incoming = await ringing;
  if (incoming.from !== alice.user)
    throw new Error(`${bob.label}: INVITE from ${incoming.from}, expected ${alice.user}`);
  await withTimeout(bob.call("answer"), 10_000, `${bob.label} answers`);
  const answered = await withTimeout(calling, 10_000, `${alice.label} sees the answer`);
  if (answered.status !== 200)
    throw new Error(`${alice.label}: INVITE got ${answered.status}`);

  await serverSaysAll(context, through[via].answered(alice, bob));
  const media = await mediaFlows([alice, bob]);
  context.notes.push(`inbound audio: ${alice.label} ${media[0].packetsReceived} packets ` +
                     `(${media[0].bytesReceived} bytes), ${bob.label} ` +
                     `${media[1].packetsReceived} packets (${media[1].bytesReceived} bytes)`);

  if (hangup === "pbx") {
    await endedByRemote([alice, bob], () => context.pbx.say("hangup"));
    await serverSaysAll(context, through.pbx.pbxHungUp());
  } else {
    const [hanging, other] = hangup === "caller" ? [alice, bob] : [bob, alice];
    await endedByRemote([other], async () => {
      const status = await withTimeout(hanging.call("hangup"), 5_000, `${hanging.label} hangs up`);
      if (status !== 200)
        throw new Error(`${hanging.label}: BYE got ${status}`);
    });
    await serverSaysAll(context, through[via].hungUp(hanging));
  }
  await stopPhones([alice, bob]);
}

// Runs `hangUp` and waits for each of `phones` to see its call ended by the remote party.
async function endedByRemote(phones, hangUp) {
  const ending = phones.map((phone) => phone.call("ended"));
  await hangUp();
  for (const [i, phone] of phones.entries()) {
    const ended = await withTimeout(ending[i], 5_000, `${phone.label} sees the BYE`);
    if (ended.by !== "remote")
      throw new Error(`${phone.label}: the call ended by ${ended.by}, expected by the remote party`);
  }
}

// Verification is on: a WebSocket to a wss listener whose certificate no trusted CA issued
// fails, one to the listener the suite's CA certified opens.
async function untrustedScenario(_, context) {
  const untrusted = await startServer("registrar (untrusted certificate)", registrarPath, [
    "--listen", "sips:127.0.0.1:0;transport=wss",
    `--tls-certificate=${context.certificates.untrusted.certificate}`,
    `--tls-key=${context.certificates.untrusted.key}`
  ], context.log);
  try {
    const page = await browser.newPage();
    context.pages.push(page);
    await page.goto(`${server.origin}/sipjs.html`, { waitUntil: "load", timeout: 10_000 });
    const connect = (url) => page.evaluate((u) => new Promise((resolve) => {
      const socket = new WebSocket(u, "sip");
      const timer = setTimeout(() => resolve("no answer in 5 s"), 5_000);
      socket.onopen = () => { clearTimeout(timer); socket.close(); resolve("open"); };
      socket.onerror = () => { clearTimeout(timer); resolve("error"); };
    }), url);
    const bad = await connect(`wss://127.0.0.1:${untrusted.ports.wss}/`);
    const good = await connect(`wss://127.0.0.1:${context.registrar.ports.wss}/`);
    if (bad !== "error" || good !== "open")
      throw new Error(`untrusted issuer: ${bad} (expected error); suite CA: ${good} (expected open)`);
  } finally {
    await untrusted.stop();
  }
}

// ---- the scenarios -----------------------------------------------------------------------

const scenarios = [];
for (const transport of ["ws", "wss"]) {
  for (const [a, b] of [["sipjs", "sipjs"], ["jssip", "jssip"], ["sipjs", "jssip"]]) {
    scenarios.push({
      name: `${transport}: ${LIBRARY[a]} and ${LIBRARY[b]} REGISTER and exchange MESSAGEs both ways`,
      run: messageScenario, a, b, transport, timeout: MESSAGE_TIMEOUT_MS
    });
  }
}
scenarios.push({
  name: "wss: a certificate from an untrusted issuer is refused, the suite CA's is accepted",
  run: untrustedScenario, timeout: MESSAGE_TIMEOUT_MS
});
for (const [a, b, transport, hangup, via] of [["sipjs", "jssip", "ws", "caller", "registrar"],
                                              ["jssip", "sipjs", "wss", "callee", "registrar"],
                                              ["sipjs", "sipjs", "wss", "caller", "registrar"],
                                              ["jssip", "jssip", "ws", "callee", "registrar"],
                                              ["sipjs", "jssip", "ws", "callee", "pbx"],
                                              ["jssip", "sipjs", "ws", "pbx", "pbx"],
                                              ["jssip", "sipjs", "wss", "caller", "pbx"],
                                              ["sipjs", "jssip", "wss", "pbx", "pbx"],
                                              ["sipjs", "jssip", "ws", "callee", "edge"],
                                              ["jssip", "sipjs", "wss", "caller", "edge"]]) {
  scenarios.push({
    name: `${transport}: ${LIBRARY[a]} calls ${LIBRARY[b]} through the ${via} with audio both ` +
          `ways, the ${hangup} hangs up`,
    run: callScenario, a, b, transport, hangup, via, timeout: CALL_TIMEOUT_MS
  });
}

// ---- main --------------------------------------------------------------------------------

const home = join(tmp, "home");
mkdirSync(home);
let registrar = null;
let pbx = null;
let kamailio = null;
let edge = null;
let edgeSkip = null;
let certificates = null;
let setupError = null;

process.stdout.write(`1..${scenarios.length + 1}\n`);
const log = (line) => {
  if (trace)
    diag(line);
};
// The registrar's and the pbx's lines go to the scenario running (its diagnostics, and
// serverSays()).
let current = null;
const serverLog = (line) => {
  if (current) {
    current.serverOutput.push(line);
    current.log(line);
  } else {
    log(line);
  }
};

try {
  certificates = makeCertificates(tmp);
  trustInNss(home, certificates.ca);
  server = await startStaticServer({ pagesDir: join(here, "pages"),
                                     nodeModulesDir: join(nodeDir, "node_modules") });
  registrar = await startServer("registrar", registrarPath, [
    "--listen", "sip:127.0.0.1:0;transport=ws",
    "--listen", "sips:127.0.0.1:0;transport=wss",
    `--tls-certificate=${certificates.server.certificate}`,
    `--tls-key=${certificates.server.key}`,
    `--allowed-origins=${server.origin}`,
    "--verbose" // every transport event, for the diagnostics of a failure
  ], serverLog);
  pbx = await startServer("pbx", pbxPath, [
    "--listen", "sip:127.0.0.1:0;transport=ws",
    "--listen", "sips:127.0.0.1:0;transport=wss",
    `--tls-certificate=${certificates.server.certificate}`,
    `--tls-key=${certificates.server.key}`,
    `--allowed-origins=${server.origin}`
  ], serverLog);
  // Kamailio, and the edge in front of it over tcp.
  if (!edgePath || !existsSync(edgePath) || !kamailioPeerPath || !existsSync(kamailioPeerPath)) {
    edgeSkip = "SOFIA_WS_EDGE or SOFIA_WS_KAMAILIO_PEER is not set to the built programs";
  } else {
    try {
      kamailio = await startServer("kamailio", kamailioPeerPath, ["--sip"], serverLog, true);
    } catch (e) {
      if (e.skip === undefined)
        throw e;
      edgeSkip = e.skip;
    }
  }
  if (kamailio) {
    edge = await startServer("edge", edgePath, [
      "--listen", "sip:127.0.0.1:0;transport=ws",
      "--listen", "sips:127.0.0.1:0;transport=wss",
      "--listen", "sip:127.0.0.1:0;transport=tcp",
      "--upstream", `sip:127.0.0.1:${kamailio.ports.tcp};transport=tcp`,
      `--tls-certificate=${certificates.server.certificate}`,
      `--tls-key=${certificates.server.key}`,
      `--allowed-origins=${server.origin}`
    ], serverLog);
  }
  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true, // Chromium's own headless mode (--headless=new)
    userDataDir: join(tmp, "profile"),
    env: { ...process.env, HOME: home }, // its NSS database: $HOME/.pki/nssdb
    args: [
      // Chromium's sandbox cannot start as root, which is how CI runs the suite.
      ...(process.getuid?.() === 0 ? ["--no-sandbox"] : []),
      // getUserMedia granted without a prompt, from a synthetic microphone (a beep).
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      // ICE host candidates on 127.0.0.1 too, for a machine whose only interface is loopback.
      "--allow-loopback-in-peer-connection"
    ],
    timeout: 20_000,
    protocolTimeout: 30_000
  });
  diag(`Chromium ${await browser.version()}, set up in ${(Date.now() - started) / 1000} s`);
} catch (e) {
  setupError = e;
}

for (const scenario of scenarios) {
  // notes: printed after the point (as TAP comments), whatever the outcome.
  const context = { registrar, pbx, edge, edgeSkip, certificates, pages: [], log: null, notes: [],
                    serverOutput: [] };
  const lines = [];
  const t0 = Date.now();
  context.log = (line) => {
    line = `[${((Date.now() - t0) / 1000).toFixed(2)}] ${line}`;
    lines.push(line);
    log(line);
  };
  current = context;
  let outcome;
  const budget = Math.min(scenario.timeout, deadline - Date.now());
  if (only && !only.test(scenario.name)) {
    outcome = { skip: "not selected by SOFIA_WS_BROWSER_ONLY" };
  } else if (setupError) {
    outcome = { ok: false, error: `setup failed: ${setupError.stack ?? setupError}` };
  } else if (budget <= 0) {
    outcome = { ok: false, error: `the suite's ${SUITE_BUDGET_MS / 1000} s are spent` };
  } else {
    try {
      const result = await withTimeout(scenario.run(scenario, context), budget, scenario.name);
      outcome = result?.skip ? result : { ok: true };
    } catch (e) {
      outcome = { ok: false, error: e.stack ?? String(e) };
    }
  }
  for (const page of context.pages)
    await page.close().catch(() => {});
  // A bridged call a failed scenario left up ends here (nothing to end otherwise).
  if (scenario.via === "pbx")
    pbx?.say("hangup");
  report(scenario.name, outcome, lines);
  diag(`${((Date.now() - t0) / 1000).toFixed(1)} s${context.notes.map((n) => `; ${n}`).join("")}`);
}

// Teardown: Chromium, the server, the registrar and the pbx, which must exit 0.
let teardown = { ok: true };
try {
  if (browser)
    await withTimeout(browser.close(), 10_000, "closing Chromium");
  browser = null;
  if (server)
    await server.close();
  if (registrar)
    await registrar.stop();
  if (pbx)
    await pbx.stop();
  if (edge)
    await edge.stop();
  if (kamailio)
    await kamailio.stop();
  if (!registrar || !pbx)
    teardown = { ok: false, error: "the registrar or the pbx never started" };
} catch (e) {
  teardown = { ok: false, error: e.stack ?? String(e) };
}
current = null;
report("the registrar, the pbx, the edge and Kamailio's runner exit 0 on SIGTERM, Chromium " +
       "closes", teardown);
diag(`the suite took ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(failures > 0 ? 1 : 0);

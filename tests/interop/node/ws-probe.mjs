// SPDX-License-Identifier: LGPL-2.1-or-later
// A WebSocket client (the `ws` package) that plays one scripted case against a SIP-over-
// WebSocket server and prints what happened as a GKeyFile group ([probe], key=value with
// GKeyFile escapes), which the C tests read with GLib. The sofia-ws listener tests run it; it
// exits 0 whenever it could report, 2 on bad usage.
//
//   node ws-probe.mjs --url ws://127.0.0.1:PORT/ --case NAME [--origin O] [--size N]
//                     [--protocol P|--no-protocol] [--text SIP]
//
// Cases: options, fragmented, binary, crlf, invalid-utf8, nul, oversize, handshake, terminate,
// wait-close, text (sends the --text message as it is and reports the first reply).
import WebSocket from 'ws';

const OPTIONS = [
    'OPTIONS sip:127.0.0.1 SIP/2.0',
    'Via: SIP/2.0/WS probe.invalid;branch=z9hG4bK-probe-1',
    'Max-Forwards: 70',
    'To: <sip:127.0.0.1>',
    'From: <sip:probe@127.0.0.1>;tag=probe',
    'Call-ID: probe-1',
    'CSeq: 1 OPTIONS',
    'Content-Length: 0',
    '', ''].join('\r\n');

function parseArgs(argv) {
    const args = {protocol: 'sip', size: 0};
    for (let i = 2; i < argv.length; i++) {
        const a = argv[i];
        if (a === '--no-protocol')
            args.protocol = null;
        else if (['--url', '--case', '--origin', '--size', '--protocol', '--text'].includes(a) &&
                 i + 1 < argv.length)
            args[a.slice(2)] = argv[++i];
        else
            return null;
    }
    return args.url && args.case ? args : null;
}

const args = parseArgs(process.argv);
if (!args) {
    console.error('usage: node ws-probe.mjs --url URL --case NAME [--origin O] [--size N] ' +
                  '[--protocol P|--no-protocol]');
    process.exit(2);
}

const report = {case: args.case, opened: false, replies: 0};
let finished = false;
function escape(value) {
    return String(value).replace(/\\/g, '\\\\').replace(/\r/g, '\\r')
        .replace(/\n/g, '\\n').replace(/\t/g, '\\t');
}
function finish(extra = {}) {
    if (finished)
        return;
    finished = true;
    Object.assign(report, extra);
    const lines = ['[probe]'];
    for (const [key, value] of Object.entries(report))
        lines.push(`${key}=${escape(value)}`);
    process.stdout.write(`${lines.join('\n')}\n`, () => process.exit(0));
}
setTimeout(() => finish({timeout: true}), 8000);

const options = {};
if (args.origin)
    options.origin = args.origin;
const ws = args.protocol ? new WebSocket(args.url, args.protocol, options)
    : new WebSocket(args.url, options);

ws.on('unexpected-response', (_req, res) => finish({status: res.statusCode}));
ws.on('error', e => finish({error: e.message}));
ws.on('close', (code, reason) => finish({closeCode: code, closeReason: reason.toString()}));

ws.on('message', (data, isBinary) => {
    if (report.replies === 0) {
        report.reply = data.toString('utf8');
        report.replyBinary = isBinary;
    }
    report.replies++;
    // One reply is what every replying case waits for; then close cleanly.
    if (args.case !== 'wait-close')
        ws.close(1000, 'done');
});

ws.on('open', () => {
    report.opened = true;
    report.protocol = ws.protocol;
    switch (args.case) {
    case 'options':
        ws.send(OPTIONS);
        break;
    case 'fragmented': {
        const third = Math.floor(OPTIONS.length / 3);
        ws.send(OPTIONS.slice(0, third), {fin: false});
        ws.send(OPTIONS.slice(third, 2 * third), {fin: false});
        ws.send(OPTIONS.slice(2 * third), {fin: true});
        break;
    }
    case 'binary':
        ws.send(Buffer.from(OPTIONS, 'utf8'), {binary: true});
        break;
    case 'crlf':
        ws.send('\r\n\r\n');
        break;
    case 'invalid-utf8':
        // A text frame whose payload is not UTF-8: ws sends Buffers as they are.
        ws.send(Buffer.from([0x4f, 0x50, 0xff, 0xfe, 0x0d, 0x0a]), {binary: false});
        break;
    case 'nul':
        // U+0000 is valid UTF-8 in a text frame, but cannot be a C string; then an OPTIONS.
        ws.send('OPTIONS\u0000sip:127.0.0.1 SIP/2.0\r\n\r\n');
        ws.send(OPTIONS);
        break;
    case 'oversize':
        ws.send('X'.repeat(Number(args.size)));
        break;
    case 'handshake':
        ws.close(1000, 'done');
        break;
    case 'terminate':
        // Vanish without a close frame, as a crashed browser or a dropped network would.
        ws.terminate();
        break;
    case 'wait-close':
        ws.send(OPTIONS);
        break;
    case 'text':
        ws.send(args.text ?? '');
        break;
    default:
        finish({error: `unknown case ${args.case}`});
    }
});

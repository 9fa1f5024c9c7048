// SPDX-License-Identifier: LGPL-2.1-or-later
// The SofiaWs.Transport contract driven from GJS with Gio._promisify. Prints TAP.
imports.gi.versions.SofiaWs = '1.0';
imports.gi.versions.SofiaWsMemory = '1.0';
const {GLib, Gio, SofiaWs, SofiaWsMemory} = imports.gi;
const System = imports.system;

Gio._promisify(SofiaWs.Transport.prototype, 'connect_async', 'connect_finish');
Gio._promisify(SofiaWs.Transport.prototype, 'disconnect_async', 'disconnect_finish');
Gio._promisify(SofiaWs.Transport.prototype, 'send_async', 'send_finish');
Gio._promisify(SofiaWs.Transport.prototype, 'after_connected_async', 'after_connected_finish');

const State = SofiaWs.TransportState;
const MESSAGE = 'MESSAGE sip:bob@example.invalid SIP/2.0\r\nContent-Length: 5\r\n\r\nhello';

// GJS (1.74) cannot implement vfuncs that take a callback, so it drives the C in-memory pair
// of the test suite (SofiaWsMemory, a test-only typelib); tests/gi/test-transport.py shows an
// implementation in Python.
function makePair() {
    const [a, b] = SofiaWsMemory.Transport.new_pair();
    return [a, b];
}

function record(t) {
    const events = [];
    for (const name of ['connecting', 'connected', 'disconnecting', 'disconnected'])
        t.connect(name, () => events.push(name));
    t.connect('message-sent', (_t, m) => events.push(`message-sent:${m.length}`));
    t.connect('message', (_t, m) => events.push(`message:${m.length}`));
    t.connect('transport-error', (_t, e) => events.push(`transport-error:${e.code}`));
    return events;
}

function assertEqual(actual, expected, what) {
    const a = JSON.stringify(actual), e = JSON.stringify(expected);
    if (a !== e)
        throw new Error(`${what}: expected ${e}, got ${a}`);
}

const tests = {
    async connectSendDisconnect() {
        const [a, b] = makePair();
        const ea = record(a), eb = record(b);
        assertEqual(await a.connect_async(null, null), true, 'connect');
        await b.connect_async(null, null);
        assertEqual(a.state, State.CONNECTED, 'state property');
        assertEqual(await a.send_async(MESSAGE, null, null), true, 'send');
        assertEqual(await a.disconnect_async(null, null), true, 'disconnect');
        assertEqual(ea, ['connecting', 'connected', `message-sent:${MESSAGE.length}`,
            'disconnecting', 'disconnected'], 'events of a');
        assertEqual(eb, ['connecting', 'connected', `message:${MESSAGE.length}`,
            `transport-error:${SofiaWs.Error.CLOSED}`, 'disconnected'], 'events of b');
    },

    async connectJoinsPending() {
        const [a] = makePair();
        const events = record(a);
        const results = await Promise.all([a.connect_async(null, null),
            a.connect_async(null, null)]);
        assertEqual(results, [true, true], 'results');
        assertEqual(events, ['connecting', 'connected'], 'events');
    },

    async disconnectWhileDisconnectedHasNoEvent() {
        const [a] = makePair();
        const events = record(a);
        assertEqual(await a.disconnect_async(null, null), true, 'disconnect');
        assertEqual(events, [], 'events');
    },

    async cancelledConnectRejects() {
        const [a] = makePair();
        const cancellable = new Gio.Cancellable();
        cancellable.cancel();
        let error = null;
        try {
            await a.connect_async(null, cancellable);
        } catch (e) {
            error = e;
        }
        if (!error || !error.matches(Gio.IOErrorEnum, Gio.IOErrorEnum.CANCELLED))
            throw new Error(`expected CANCELLED, got ${error}`);
        assertEqual(a.state, State.DISCONNECTED, 'state');
    },

    async optionsVariantAccepted() {
        const [a, b] = makePair();
        await a.connect_async(new GLib.Variant('a{sv}', {force: new GLib.Variant('b', true)}),
            null);
        await b.connect_async(null, null);
        assertEqual(await a.send_async(MESSAGE,
            new GLib.Variant('a{sv}', {force: new GLib.Variant('b', true)}), null), true, 'send');
    },

    async sendNotConnectedRejects() {
        const [a] = makePair();
        const events = record(a);
        let error = null;
        try {
            await a.send_async(MESSAGE, null, null);
        } catch (e) {
            error = e;
        }
        if (!error || !error.matches(SofiaWs.error_quark(), SofiaWs.Error.NOT_CONNECTED))
            throw new Error(`expected NOT_CONNECTED, got ${error}`);
        assertEqual(events, [`transport-error:${SofiaWs.Error.NOT_CONNECTED}`], 'events');
    },

    async failedConnectRejectsWithImplementationError() {
        const [a] = makePair();
        a.set_connect_error(new GLib.Error(SofiaWs.error_quark(), SofiaWs.Error.CONNECT_TIMEOUT,
            'Connection timeout'));
        const events = record(a);
        let error = null;
        try {
            await a.connect_async(null, null);
        } catch (e) {
            error = e;
        }
        if (!error || !error.matches(SofiaWs.error_quark(), SofiaWs.Error.CONNECT_TIMEOUT))
            throw new Error(`expected CONNECT_TIMEOUT, got ${error}`);
        assertEqual(events, ['connecting', `transport-error:${SofiaWs.Error.CONNECT_TIMEOUT}`,
            'disconnected'], 'events');
    },

    async afterConnectedResolvesOnConnect() {
        const [a] = makePair();
        const order = [];
        const after = a.after_connected_async(null).then(() => order.push('after'));
        a.connect('connected', () => order.push('connected'));
        await a.connect_async(null, null);
        await after;
        assertEqual(order, ['connected', 'after'], 'order');
        assertEqual(await a.after_connected_async(null), true, 'when already connected');
    },
};

async function main() {
    const names = Object.keys(tests);
    print(`1..${names.length}`);
    let failed = 0;
    for (const [i, name] of names.entries()) {
        try {
            // eslint-disable-next-line no-await-in-loop
            await tests[name]();
            print(`ok ${i + 1} ${name}`);
        } catch (e) {
            failed++;
            print(`not ok ${i + 1} ${name}`);
            for (const line of `${e}\n${e.stack || ''}`.split('\n'))
                print(`# ${line}`);
        }
    }
    return failed ? 1 : 0;
}

const loop = new GLib.MainLoop(null, false);
let status = 1;
main().then(s => {
    status = s;
}).catch(e => {
    print(`Bail out! ${e}`);
}).finally(() => loop.quit());
GLib.timeout_add_seconds(GLib.PRIORITY_DEFAULT, 30, () => {
    print('Bail out! timeout');
    loop.quit();
    return GLib.SOURCE_REMOVE;
});
loop.run();
System.exit(status);

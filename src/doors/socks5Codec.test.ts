import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ErrorCodes, SocksReply } from '../shared/errors.js';
import { parseIPv6 } from '../shared/patterns.js';
import {
  encodeGreeting,
  encodeMethodSelection,
  encodeReply,
  encodeRequest,
  encodeUserPass,
  encodeUserPassStatus,
  formatIPv6,
  MAX_GREETING_BYTES,
  MAX_REQUEST_BYTES,
  MAX_USERPASS_BYTES,
  parseGreeting,
  parseMethodSelection,
  parseReply,
  parseRequest,
  parseUserPass,
  parseUserPassStatus,
  type ParseResult,
} from './socks5Codec.js';

/** Hex with spaces for readability: `h('05 01 02')`. */
function h(hex: string): Buffer {
  return Buffer.from(hex.replace(/\s+/g, ''), 'hex');
}

function ascii(text: string): string {
  return Buffer.from(text, 'latin1').toString('hex');
}

type Parser = (buf: Uint8Array) => ParseResult<unknown>;

const parsers: Record<string, Parser> = {
  parseGreeting,
  parseUserPass,
  parseRequest,
  parseMethodSelection,
  parseUserPassStatus,
  parseReply,
};

interface ValidFixture {
  readonly name: string;
  readonly parse: Parser;
  readonly hex: string;
  readonly value: unknown;
}

const BAD_TARGET = ErrorCodes.WARREN_E_BAD_TARGET.socks;
const longDomain = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}`; // 255 bytes

const valid: readonly ValidFixture[] = [
  { name: 'greeting, user/pass only', parse: parseGreeting, hex: '05 01 02', value: { methods: [2] } },
  { name: 'greeting, none and user/pass', parse: parseGreeting, hex: '05 02 00 02', value: { methods: [0, 2] } },
  {
    name: 'greeting, 255 methods',
    parse: parseGreeting,
    hex: `05 ff ${Buffer.alloc(255, 0x02).toString('hex')}`,
    value: { methods: Array<number>(255).fill(2) },
  },
  {
    name: 'user/pass alice:tok',
    parse: parseUserPass,
    hex: '01 05 616c696365 03 746f6b',
    value: { username: 'alice', password: 'tok' },
  },
  { name: 'user/pass, empty username', parse: parseUserPass, hex: '01 00 03 746f6b', value: { username: '', password: 'tok' } },
  {
    name: 'user/pass, UTF-8 username',
    parse: parseUserPass,
    hex: '01 04 7a6fc3ab 01 78',
    value: { username: 'zoë', password: 'x' },
  },
  {
    name: 'user/pass, both 255 bytes',
    parse: parseUserPass,
    hex: `01 ff ${ascii('u'.repeat(255))} ff ${ascii('p'.repeat(255))}`,
    value: { username: 'u'.repeat(255), password: 'p'.repeat(255) },
  },
  {
    name: 'CONNECT 127.0.0.1:22',
    parse: parseRequest,
    hex: '05 01 00 01 7f000001 0016',
    value: { command: 'connect', host: '127.0.0.1', port: 22, addressType: 'ipv4' },
  },
  {
    name: 'CONNECT alpha.warren:22',
    parse: parseRequest,
    hex: '05 01 00 03 0c 616c7068612e77617272656e 0016',
    value: { command: 'connect', host: 'alpha.warren', port: 22, addressType: 'domain' },
  },
  {
    name: 'CONNECT [::1]:443',
    parse: parseRequest,
    hex: '05 01 00 04 00000000000000000000000000000001 01bb',
    value: { command: 'connect', host: '::1', port: 443, addressType: 'ipv6' },
  },
  {
    name: 'CONNECT [2001:db8::1:0:0:1]:65535 (canonical compression)',
    parse: parseRequest,
    hex: '05 01 00 04 20010db8000000000001000000000001 ffff',
    value: { command: 'connect', host: '2001:db8::1:0:0:1', port: 65535, addressType: 'ipv6' },
  },
  {
    name: 'CONNECT to a 255-byte domain',
    parse: parseRequest,
    hex: `05 01 00 03 ff ${ascii(longDomain)} 0050`,
    value: { command: 'connect', host: longDomain, port: 80, addressType: 'domain' },
  },
  {
    name: 'BIND 0.0.0.0:0 (port 0 allowed outside CONNECT)',
    parse: parseRequest,
    hex: '05 02 00 01 00000000 0000',
    value: { command: 'bind', host: '0.0.0.0', port: 0, addressType: 'ipv4' },
  },
  {
    name: 'UDP ASSOCIATE [::]:0',
    parse: parseRequest,
    hex: '05 03 00 04 00000000000000000000000000000000 0000',
    value: { command: 'udp-associate', host: '::', port: 0, addressType: 'ipv6' },
  },
  {
    name: 'unknown command 0x09 kept as a number',
    parse: parseRequest,
    hex: '05 09 00 01 0a000001 1f90',
    value: { command: 9, host: '10.0.0.1', port: 8080, addressType: 'ipv4' },
  },
  { name: 'method selection', parse: parseMethodSelection, hex: '05 02', value: { method: 2 } },
  { name: 'method selection, none acceptable', parse: parseMethodSelection, hex: '05 ff', value: { method: 0xff } },
  { name: 'user/pass status ok', parse: parseUserPassStatus, hex: '01 00', value: { ok: true, status: 0 } },
  { name: 'user/pass status failure', parse: parseUserPassStatus, hex: '01 01', value: { ok: false, status: 1 } },
  {
    name: 'reply succeeded 0.0.0.0:0',
    parse: parseReply,
    hex: '05 00 00 01 00000000 0000',
    value: { reply: 0, host: '0.0.0.0', port: 0, addressType: 'ipv4' },
  },
  {
    name: 'reply host unreachable, bound to a domain',
    parse: parseReply,
    hex: `05 04 00 03 03 ${ascii('hub')} 0438`,
    value: { reply: 4, host: 'hub', port: 1080, addressType: 'domain' },
  },
];

interface ErrorFixture {
  readonly name: string;
  readonly parse: Parser;
  readonly hex: string;
  readonly reason: RegExp;
  readonly reply: number | undefined;
}

const errors: readonly ErrorFixture[] = [
  { name: 'greeting: SOCKS4', parse: parseGreeting, hex: '04 01 0050 7f000001 00', reason: /version 0x04/, reply: undefined },
  { name: 'greeting: an HTTP request', parse: parseGreeting, hex: ascii('CONNECT a:1 HTTP/1.1'), reason: /version 0x43/, reply: undefined },
  { name: 'greeting: zero methods', parse: parseGreeting, hex: '05 00', reason: /no authentication methods/, reply: 0xff },
  { name: 'user/pass: wrong version', parse: parseUserPass, hex: '05 01 61 01 62', reason: /version 0x05/, reply: 0x01 },
  { name: 'user/pass: empty password', parse: parseUserPass, hex: '01 01 61 00', reason: /empty password/, reply: 0x01 },
  { name: 'request: wrong version', parse: parseRequest, hex: '04 01 00 01 7f000001 0016', reason: /version 0x04/, reply: undefined },
  {
    name: 'request: reserved byte not zero',
    parse: parseRequest,
    hex: '05 01 01 01 7f000001 0016',
    reason: /reserved byte is 0x01/,
    reply: SocksReply.generalFailure,
  },
  {
    name: 'request: unknown address type 0x02',
    parse: parseRequest,
    hex: '05 01 00 02 7f000001 0016',
    reason: /address type 0x02/,
    reply: SocksReply.addressTypeNotSupported,
  },
  {
    name: 'request: unknown address type 0xff',
    parse: parseRequest,
    hex: '05 01 00 ff',
    reason: /address type 0xff/,
    reply: SocksReply.addressTypeNotSupported,
  },
  { name: 'request: empty domain', parse: parseRequest, hex: '05 01 00 03 00 0016', reason: /domain name is empty/, reply: BAD_TARGET },
  {
    name: 'request: NUL in domain',
    parse: parseRequest,
    hex: '05 01 00 03 03 61 00 62 0016',
    reason: /byte 0x00 at offset 1/,
    reply: BAD_TARGET,
  },
  { name: 'request: space in domain', parse: parseRequest, hex: '05 01 00 03 03 61 20 62 0016', reason: /byte 0x20/, reply: BAD_TARGET },
  { name: 'request: DEL in domain', parse: parseRequest, hex: '05 01 00 03 01 7f 0016', reason: /byte 0x7f/, reply: BAD_TARGET },
  {
    name: 'request: non-ASCII byte in domain',
    parse: parseRequest,
    hex: '05 01 00 03 04 c3a9 6162 0016',
    reason: /byte 0xc3 at offset 0/,
    reply: BAD_TARGET,
  },
  {
    name: 'request: newline in domain (log injection)',
    parse: parseRequest,
    hex: `05 01 00 03 05 ${ascii('a\nb.c')} 0016`,
    reason: /byte 0x0a/,
    reply: BAD_TARGET,
  },
  { name: 'request: CONNECT to port 0', parse: parseRequest, hex: '05 01 00 01 7f000001 0000', reason: /port 0/, reply: BAD_TARGET },
  {
    name: 'request: CONNECT to port 0 on a domain',
    parse: parseRequest,
    hex: `05 01 00 03 03 ${ascii('hub')} 0000`,
    reason: /port 0/,
    reply: BAD_TARGET,
  },
  { name: 'method selection: wrong version', parse: parseMethodSelection, hex: '04 02', reason: /version 0x04/, reply: undefined },
  { name: 'user/pass status: wrong version', parse: parseUserPassStatus, hex: '05 00', reason: /version 0x05/, reply: undefined },
  { name: 'reply: wrong version', parse: parseReply, hex: '00 5a 0000 00000000', reason: /version 0x00/, reply: undefined },
  { name: 'reply: reserved byte', parse: parseReply, hex: '05 00 07 01 00000000 0000', reason: /reserved byte/, reply: undefined },
  { name: 'reply: unknown address type', parse: parseReply, hex: '05 00 00 05', reason: /address type 0x05/, reply: undefined },
  { name: 'reply: empty domain', parse: parseReply, hex: '05 00 00 03 00 0000', reason: /domain name is empty/, reply: undefined },
];

/** What a reader sees feeding `bytes` in the given chunks: one parse result per chunk. */
function feed(parse: Parser, bytes: Uint8Array, cuts: readonly number[]): ParseResult<unknown>[] {
  const results: ParseResult<unknown>[] = [];
  for (const cut of [...cuts, bytes.length]) results.push(parse(bytes.subarray(0, cut)));
  return results;
}

describe('socks5Codec: valid messages from hex fixtures', () => {
  for (const fixture of valid) {
    test(fixture.name, () => {
      const bytes = h(fixture.hex);
      assert.deepEqual(fixture.parse(bytes), { kind: 'ok', value: fixture.value, consumed: bytes.length });
    });
  }
});

describe('socks5Codec: split at every byte boundary gives the same result', () => {
  for (const fixture of valid) {
    test(fixture.name, () => {
      const bytes = h(fixture.hex);
      const whole = fixture.parse(bytes);
      for (let cut = 0; cut < bytes.length; cut++) {
        const [first, last] = feed(fixture.parse, bytes, [cut]);
        assert.deepEqual(first, { kind: 'incomplete' }, `first ${cut} bytes`);
        assert.deepEqual(last, whole, `split at ${cut}`);
      }
      // And one byte at a time, as the door reads: incomplete until the last byte.
      const steps = feed(fixture.parse, bytes, Array.from({ length: bytes.length }, (_, i) => i));
      assert.ok(steps.slice(0, -1).every((r) => r.kind === 'incomplete'));
      assert.deepEqual(steps.at(-1), whole);
    });
  }
});

describe('socks5Codec: trailing data is not consumed', () => {
  for (const fixture of valid) {
    test(fixture.name, () => {
      const bytes = h(fixture.hex);
      const withTrailer = Buffer.concat([bytes, h('deadbeef 05 01 02'), Buffer.alloc(1000, 0x41)]);
      assert.deepEqual(fixture.parse(withTrailer), { kind: 'ok', value: fixture.value, consumed: bytes.length });
    });
  }

  test('a pipelined handshake parses message after message', () => {
    const wire = Buffer.concat([
      encodeGreeting([0x02]),
      encodeUserPass('alice', 'token'),
      encodeRequest({ command: 'connect', host: 'db.alpha.warren', port: 5432 }),
      Buffer.from('payload'),
    ]);
    const greeting = parseGreeting(wire);
    assert.equal(greeting.kind, 'ok');
    if (greeting.kind !== 'ok') return;
    const rest1 = wire.subarray(greeting.consumed);
    const auth = parseUserPass(rest1);
    assert.equal(auth.kind, 'ok');
    if (auth.kind !== 'ok') return;
    const rest2 = rest1.subarray(auth.consumed);
    const request = parseRequest(rest2);
    assert.equal(request.kind, 'ok');
    if (request.kind !== 'ok') return;
    assert.equal(request.value.host, 'db.alpha.warren');
    assert.equal(rest2.subarray(request.consumed).toString(), 'payload');
  });

  test('values do not alias the input buffer', () => {
    const bytes = h('05 02 00 02');
    const result = parseGreeting(bytes);
    bytes.fill(0);
    assert.deepEqual(result, { kind: 'ok', value: { methods: [0, 2] }, consumed: 4 });
  });
});

describe('socks5Codec: truncated input is incomplete', () => {
  test('empty input, for every parser', () => {
    for (const [name, parse] of Object.entries(parsers)) {
      assert.deepEqual(parse(new Uint8Array(0)), { kind: 'incomplete' }, name);
    }
  });

  test('a declared length longer than the bytes present waits, however large', () => {
    assert.deepEqual(parseGreeting(h('05 ff 02 02')), { kind: 'incomplete' });
    assert.deepEqual(parseUserPass(h(`01 ff ${ascii('u'.repeat(255))} ff 61`)), { kind: 'incomplete' });
    assert.deepEqual(parseRequest(h(`05 01 00 03 ff ${ascii('a'.repeat(254))}`)), { kind: 'incomplete' });
    assert.deepEqual(parseRequest(h(`05 01 00 03 ff ${ascii('a'.repeat(255))} 00`)), { kind: 'incomplete' });
  });

  test('the maximum sizes are what the grammar allows', () => {
    assert.equal(MAX_GREETING_BYTES, h(valid[2]!.hex).length);
    assert.equal(MAX_USERPASS_BYTES, h(valid[6]!.hex).length);
    assert.equal(MAX_REQUEST_BYTES, h(valid[11]!.hex).length);
  });
});

describe('socks5Codec: error paths', () => {
  for (const fixture of errors) {
    test(fixture.name, () => {
      const bytes = h(fixture.hex);
      const result = fixture.parse(bytes);
      assert.equal(result.kind, 'error');
      if (result.kind !== 'error') return;
      assert.match(result.reason, fixture.reason);
      assert.equal(result.reply, fixture.reply);
      // Found at the offending byte: every prefix is incomplete until then, the same error after.
      let seen = false;
      for (let cut = 0; cut <= bytes.length; cut++) {
        const partial = fixture.parse(bytes.subarray(0, cut));
        if (partial.kind === 'error') seen = true;
        assert.deepEqual(partial, seen ? result : { kind: 'incomplete' }, `first ${cut} bytes`);
      }
    });
  }
});

describe('socks5Codec: encoders', () => {
  const cases: ReadonlyArray<readonly [string, () => Buffer, string]> = [
    ['method selection user/pass', () => encodeMethodSelection(0x02), '05 02'],
    ['method selection none acceptable', () => encodeMethodSelection(0xff), '05 ff'],
    ['user/pass status ok', () => encodeUserPassStatus(true), '01 00'],
    ['user/pass status failure', () => encodeUserPassStatus(false), '01 01'],
    ['reply with the default bound address', () => encodeReply(0x00), '05 00 00 01 00000000 0000'],
    ['reply with an IPv6 bound address', () => encodeReply(0x04, { host: '::1', port: 443 }), '05 04 00 04 00000000000000000000000000000001 01bb'],
    ['reply with a domain bound address', () => encodeReply(0x00, { host: 'hub', port: 1080 }), `05 00 00 03 03 ${ascii('hub')} 0438`],
    ['greeting', () => encodeGreeting([0x00, 0x02]), '05 02 00 02'],
    ['user/pass', () => encodeUserPass('alice', 'tok'), '01 05 616c696365 03 746f6b'],
    ['user/pass, empty username', () => encodeUserPass('', 'tok'), '01 00 03 746f6b'],
    ['CONNECT IPv4', () => encodeRequest({ command: 'connect', host: '127.0.0.1', port: 22 }), '05 01 00 01 7f000001 0016'],
    ['CONNECT domain', () => encodeRequest({ command: 'connect', host: 'alpha.warren', port: 22 }), '05 01 00 03 0c 616c7068612e77617272656e 0016'],
    ['CONNECT IPv6', () => encodeRequest({ command: 'connect', host: '::1', port: 443 }), '05 01 00 04 00000000000000000000000000000001 01bb'],
    ['CONNECT bracketed IPv6', () => encodeRequest({ command: 'connect', host: '[::1]', port: 443 }), '05 01 00 04 00000000000000000000000000000001 01bb'],
    ['CONNECT IPv4-mapped IPv6', () => encodeRequest({ command: 'connect', host: '::ffff:10.0.0.1', port: 1 }), '05 01 00 04 00000000000000000000ffff0a000001 0001'],
    ['BIND', () => encodeRequest({ command: 'bind', host: '0.0.0.0', port: 0 }), '05 02 00 01 00000000 0000'],
    ['UDP ASSOCIATE', () => encodeRequest({ command: 'udp-associate', host: '0.0.0.0', port: 0 }), '05 03 00 01 00000000 0000'],
    ['a numeric command', () => encodeRequest({ command: 9, host: '10.0.0.1', port: 8080 }), '05 09 00 01 0a000001 1f90'],
  ];
  for (const [name, encode, hex] of cases) {
    test(name, () => assert.equal(encode().toString('hex'), h(hex).toString('hex')));
  }

  test('inputs the wire cannot carry, or the parser would refuse, throw RangeError', () => {
    const bad: ReadonlyArray<readonly [string, () => unknown]> = [
      ['no methods', () => encodeGreeting([])],
      ['256 methods', () => encodeGreeting(Array<number>(256).fill(2))],
      ['method 256', () => encodeGreeting([256])],
      ['method -1', () => encodeMethodSelection(-1)],
      ['reply 1.5', () => encodeReply(1.5)],
      ['empty password', () => encodeUserPass('alice', '')],
      ['256-byte password', () => encodeUserPass('alice', 'p'.repeat(256))],
      ['256-byte username', () => encodeUserPass('é'.repeat(128), 'p')],
      ['port 65536', () => encodeRequest({ command: 'connect', host: 'a', port: 65536 })],
      ['port -1', () => encodeReply(0, { host: '0.0.0.0', port: -1 })],
      ['port 1.5', () => encodeRequest({ command: 'connect', host: 'a', port: 1.5 })],
      ['CONNECT to port 0', () => encodeRequest({ command: 'connect', host: 'a', port: 0 })],
      ['empty host', () => encodeRequest({ command: 'connect', host: '', port: 1 })],
      ['256-byte domain', () => encodeRequest({ command: 'connect', host: 'a'.repeat(256), port: 1 })],
      ['space in domain', () => encodeRequest({ command: 'connect', host: 'a b', port: 1 })],
      ['non-ASCII domain', () => encodeRequest({ command: 'connect', host: 'bücher.example', port: 1 })],
      ['command 256', () => encodeRequest({ command: 256, host: 'a', port: 1 })],
    ];
    for (const [name, encode] of bad) assert.throws(encode, RangeError, name);
  });
});

describe('socks5Codec: IPv6 text', () => {
  // RFC 5952 §4 and its examples.
  const canonical: ReadonlyArray<readonly [string, string]> = [
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:0:1:0:0:0', '2001:db8:0:0:1::'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['2001:DB8:AAAA:BBBB:CCCC:DDDD:EEEE:0001', '2001:db8:aaaa:bbbb:cccc:dddd:eeee:1'],
    ['::ffff:10.0.0.1', '::ffff:a00:1'],
    ['::10.0.0.1', '::a00:1'],
    ['fe80::1:2', 'fe80::1:2'],
  ];
  for (const [spelled, expected] of canonical) {
    test(`${spelled} → ${expected}`, () => {
      const bytes = parseIPv6(spelled);
      assert.ok(bytes);
      assert.equal(formatIPv6(bytes), expected);
    });
  }

  test('not IPv6, or with a zone id, is undefined', () => {
    for (const text of ['', '1.2.3.4', 'a', '::1::2', '1:2:3:4:5:6:7:8:9', 'fe80::1%eth0', '[::1]', 'g::1']) {
      assert.equal(parseIPv6(text), undefined, text);
    }
  });

  test('property: the canonical text is what WHATWG URL serialises, and parses back to the same bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean(), (raw, sparse) => {
        // Sparse inputs make zero runs (the interesting part of RFC 5952) common.
        const bytes = sparse ? raw.map((b) => (b < 160 ? 0 : b)) : raw;
        const text = formatIPv6(bytes);
        assert.equal(`[${text}]`, new URL(`http://[${text}]/`).hostname);
        assert.deepEqual(parseIPv6(text), bytes);
      }),
      { numRuns: 5_000, plugins: [fc.interruptAfterTimeLimit(20_000, { failOnInterrupt: true })] },
    );
  });
});

describe('socks5Codec: properties', () => {
  const command = fc.constantFrom('connect' as const, 'bind' as const, 'udp-associate' as const);
  const port = fc.integer({ min: 1, max: 65535 });
  const target = fc.oneof(
    fc.ipV4().map((host) => ({ host, expected: host, addressType: 'ipv4' as const })),
    fc.ipV6().map((host) => ({ host, expected: new URL(`http://[${host}]/`).hostname.slice(1, -1), addressType: 'ipv6' as const })),
    fc
      .domain()
      .filter((d) => d.length <= 255)
      .map((host) => ({ host, expected: host, addressType: 'domain' as const })),
  );

  /** Valid messages of every kind, as the encoders write them. */
  const validMessage = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 255 }).map((methods) => encodeGreeting([...methods])),
    fc
      .tuple(fc.string({ unit: 'binary-ascii', maxLength: 255 }), fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 255 }))
      .map(([user, pass]) => encodeUserPass(user, pass)),
    fc.tuple(command, target, port).map(([cmd, t, p]) => encodeRequest({ command: cmd, host: t.host, port: p })),
    fc.tuple(fc.integer({ min: 0, max: 255 }), target, port).map(([rep, t, p]) => encodeReply(rep, { host: t.host, port: p })),
    fc.integer({ min: 0, max: 255 }).map((m) => encodeMethodSelection(m)),
    fc.boolean().map((ok) => encodeUserPassStatus(ok)),
  );

  /**
   * Arbitrary bytes; bytes shaped like a message header; and valid messages with one byte changed, cut
   * short or followed by junk, so the deep paths (every address type, lengths at the limits) are
   * reached as often as the shallow ones.
   */
  const anyBytes = fc.oneof(
    fc.uint8Array({ maxLength: 700 }),
    fc
      .tuple(
        fc.constantFrom(0x01, 0x05),
        fc.oneof(fc.constantFrom(0x00, 0x01, 0x02, 0x03, 0xff), fc.integer({ min: 0, max: 255 })),
        fc.constantFrom(0x00, 0x00, 0x00, 0x01),
        fc.oneof(fc.constantFrom(0x01, 0x03, 0x04), fc.integer({ min: 0, max: 255 })),
        fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 255 })),
        fc.oneof(fc.uint8Array({ maxLength: 40 }).map((b) => b.map((c) => 0x21 + (c % 94))), fc.uint8Array({ maxLength: 600 })),
      )
      .map(([a, b, c, d, e, rest]) => Uint8Array.from([a, b, c, d, e, ...rest])),
    fc
      .tuple(
        validMessage,
        fc.option(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }))),
        fc.option(fc.nat()),
        fc.uint8Array({ maxLength: 16 }),
      )
      .map(([message, change, cut, junk]) => {
        const bytes = Uint8Array.from(message);
        if (change) bytes[change[0] % bytes.length] = change[1];
        const kept = cut === null ? bytes : bytes.subarray(0, cut % (bytes.length + 1));
        return Uint8Array.from([...kept, ...junk]);
      }),
  );

  test('property: 20,000 arbitrary byte arrays through every parser never throw and stay in bounds', { timeout: 60_000 }, () => {
    fc.assert(
      fc.property(anyBytes, (bytes) => {
        for (const parse of Object.values(parsers)) {
          const result = parse(bytes);
          switch (result.kind) {
            case 'incomplete':
              break;
            case 'ok':
              assert.ok(Number.isInteger(result.consumed) && result.consumed > 0 && result.consumed <= bytes.length);
              break;
            case 'error':
              assert.ok(typeof result.reason === 'string' && result.reason.length > 0);
              assert.ok(result.reply === undefined || (Number.isInteger(result.reply) && result.reply >= 0 && result.reply <= 0xff));
              break;
            default:
              assert.fail(`unexpected result ${JSON.stringify(result)}`);
          }
        }
      }),
      { numRuns: 20_000, plugins: [fc.interruptAfterTimeLimit(45_000, { failOnInterrupt: true })] },
    );
  });

  test('property: every prefix is incomplete or already the final answer (incremental = whole)', { timeout: 60_000 }, () => {
    fc.assert(
      fc.property(anyBytes, (bytes) => {
        for (const parse of Object.values(parsers)) {
          const whole = parse(bytes);
          // Past the longest message nothing can change, so prefixes beyond it need no check.
          const limit = Math.min(bytes.length, MAX_USERPASS_BYTES + 1);
          for (let cut = 0; cut < limit; cut++) {
            const partial = parse(bytes.subarray(0, cut));
            if (partial.kind !== 'incomplete') assert.deepEqual(partial, whole);
          }
          if (whole.kind === 'ok') assert.deepEqual(parse(bytes.subarray(0, whole.consumed)), whole);
        }
      }),
      { numRuns: 3_000, plugins: [fc.interruptAfterTimeLimit(45_000, { failOnInterrupt: true })] },
    );
  });

  test('property: encodeRequest → parseRequest gives the same command, host and port', { timeout: 60_000 }, () => {
    fc.assert(
      fc.property(command, target, port, fc.uint8Array({ maxLength: 8 }), (cmd, t, p, trailer) => {
        const encoded = encodeRequest({ command: cmd, host: t.host, port: p });
        const result = parseRequest(Buffer.concat([encoded, trailer]));
        assert.deepEqual(result, {
          kind: 'ok',
          value: { command: cmd, host: t.expected, port: p, addressType: t.addressType },
          consumed: encoded.length,
        });
      }),
      { numRuns: 20_000, plugins: [fc.interruptAfterTimeLimit(45_000, { failOnInterrupt: true })] },
    );
  });

  test('property: every request and reply the parser accepts re-encodes to the same bytes', { timeout: 60_000 }, () => {
    fc.assert(
      fc.property(anyBytes, (bytes) => {
        const request = parseRequest(bytes);
        // A domain that spells an IP literal re-encodes with the IP address type instead.
        if (request.kind === 'ok' && !(request.value.addressType === 'domain' && /^[\d.]+$|:/.test(request.value.host))) {
          assert.deepEqual(encodeRequest(request.value), Buffer.from(bytes.subarray(0, request.consumed)));
        }
        const reply = parseReply(bytes);
        if (reply.kind === 'ok' && !(reply.value.addressType === 'domain' && /^[\d.]+$|:/.test(reply.value.host))) {
          assert.deepEqual(encodeReply(reply.value.reply, reply.value), Buffer.from(bytes.subarray(0, reply.consumed)));
        }
      }),
      { numRuns: 10_000, plugins: [fc.interruptAfterTimeLimit(45_000, { failOnInterrupt: true })] },
    );
  });
});

/**
 * SPDY/3.1, server side, the subset Kubernetes uses (kubectl's `exec` and `port-forward` over an
 * upgraded connection, or tunnelled in WebSocket messages): client-initiated streams, no server push,
 * no flow control (moby/spdystream, kubectl's implementation, has none either). Part of the
 * kube-apiserver stand-in (./apiserver.ts).
 */
import { constants as zconst, inflateSync } from 'node:zlib';

function spdyDictionary(): Buffer {
  const words = [
    ...'options head post put delete trace accept accept-charset accept-encoding accept-language accept-ranges age allow authorization cache-control connection content-base content-encoding content-language content-length content-location content-md5 content-range content-type date etag expect expires from host if-match if-modified-since if-none-match if-range if-unmodified-since last-modified location max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade user-agent vary via warning www-authenticate method get status'.split(' '),
    '200 OK', 'version', 'HTTP/1.1', 'url', 'public', 'set-cookie', 'keep-alive', 'origin',
  ];
  const tail =
    '100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.';
  const parts = words.map((w) => {
    const b = Buffer.alloc(4 + w.length);
    b.writeUInt32BE(w.length);
    b.write(w, 4, 'latin1');
    return b;
  });
  return Buffer.concat([...parts, Buffer.from(tail, 'latin1')]);
}

/** The SPDY/3 header-compression dictionary (draft 3, §2.6.10.1): 1423 bytes. */
export const SPDY_DICTIONARY = spdyDictionary();

function adler32(buf: Buffer): number {
  let a = 1;
  let b = 0;
  for (const byte of buf) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

const SPDY = { SYN_STREAM: 1, SYN_REPLY: 2, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, HEADERS: 8, WINDOW_UPDATE: 9 } as const;
const FLAG_FIN = 0x01;

export class SpdyStream {
  readonly headers: Record<string, string>;
  private remoteFin = false;
  private localFin = false;
  onData: (b: Buffer) => void = () => {};
  onEnd: () => void = () => {};
  onReset: () => void = () => {};

  constructor(
    readonly id: number,
    headers: Record<string, string>,
    private readonly session: SpdySession,
  ) {
    this.headers = headers;
  }

  write(data: Buffer): void {
    if (this.localFin || this.session.closed) return;
    for (let off = 0; off < data.length; off += 32 * 1024) this.session.writeData(this.id, data.subarray(off, off + 32 * 1024), false);
  }

  end(): void {
    if (this.localFin || this.session.closed) return;
    this.localFin = true;
    this.session.writeData(this.id, Buffer.alloc(0), true);
    this.maybeDone();
  }

  reset(): void {
    this.localFin = true;
    this.remoteFin = true;
    this.session.writeControl(SPDY.RST_STREAM, 0, u32(this.id, 5 /* CANCEL */));
    this.session.streams.delete(this.id);
  }

  receive(data: Buffer, fin: boolean): void {
    if (data.length > 0) this.onData(data);
    if (fin && !this.remoteFin) {
      this.remoteFin = true;
      this.onEnd();
      this.maybeDone();
    }
  }

  receiveReset(): void {
    this.remoteFin = true;
    this.localFin = true;
    this.onReset();
  }

  private maybeDone(): void {
    if (this.localFin && this.remoteFin) this.session.streams.delete(this.id);
  }
}

function u32(...values: number[]): Buffer {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, 4 * i));
  return b;
}

/**
 * Server side of a SPDY/3.1 session over any byte transport (an upgraded socket, or WebSocket
 * messages when SPDY is tunnelled). Header blocks from the peer are inflated with the shared
 * dictionary; ours are written as zlib *stored* blocks, which every inflater accepts and which keep
 * our side synchronous.
 */
export class SpdySession {
  readonly streams = new Map<number, SpdyStream>();
  closed = false;
  private buf: Buffer = Buffer.alloc(0);
  private compressedIn: Buffer = Buffer.alloc(0);
  private inflatedLen = 0;
  private deflateStarted = false;
  private lastStreamId = 0;

  constructor(
    private readonly send: (b: Buffer) => void,
    private readonly onStream: (s: SpdyStream) => void,
    private readonly onClose: () => void,
  ) {}

  feed(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 8) {
      const length = this.buf.readUInt32BE(4) & 0xffffff;
      if (this.buf.length < 8 + length) return;
      const frame = this.buf.subarray(0, 8 + length);
      this.buf = this.buf.subarray(8 + length);
      this.handleFrame(frame);
      if (this.closed) return;
    }
  }

  private handleFrame(frame: Buffer): void {
    const flags = frame[4]!;
    const payload = frame.subarray(8);
    if ((frame[0]! & 0x80) === 0) {
      const id = frame.readUInt32BE(0) & 0x7fffffff;
      this.streams.get(id)?.receive(payload, (flags & FLAG_FIN) !== 0);
      return;
    }
    const version = frame.readUInt16BE(0) & 0x7fff;
    const type = frame.readUInt16BE(2);
    if (version !== 3) {
      this.close();
      return;
    }
    switch (type) {
      case SPDY.SYN_STREAM: {
        const id = payload.readUInt32BE(0) & 0x7fffffff;
        const headers = this.inflateHeaders(payload.subarray(10));
        this.lastStreamId = Math.max(this.lastStreamId, id);
        const stream = new SpdyStream(id, headers, this);
        this.streams.set(id, stream);
        // spdystream drops data on a stream until its SYN_REPLY arrives: reply before anything else.
        this.writeControl(SPDY.SYN_REPLY, 0, Buffer.concat([u32(id), this.deflateHeaders({})]));
        this.onStream(stream);
        if ((flags & FLAG_FIN) !== 0) stream.receive(Buffer.alloc(0), true);
        break;
      }
      case SPDY.HEADERS:
        this.inflateHeaders(payload.subarray(4)); // keep the shared zlib context in step
        break;
      case SPDY.RST_STREAM: {
        const id = payload.readUInt32BE(0) & 0x7fffffff;
        const s = this.streams.get(id);
        this.streams.delete(id);
        s?.receiveReset();
        break;
      }
      case SPDY.PING:
        // Client-initiated pings have odd ids: echo them.
        if ((payload.readUInt32BE(0) & 1) === 1) this.writeControl(SPDY.PING, 0, payload.subarray(0, 4));
        break;
      case SPDY.GOAWAY:
        this.close();
        break;
      default:
        break; // SETTINGS, WINDOW_UPDATE: nothing to do without flow control
    }
  }

  private inflateHeaders(block: Buffer): Record<string, string> {
    // One zlib stream per direction for the whole session: inflate everything so far and take the new
    // tail (header blocks are few and small, so re-inflating is cheap and keeps this synchronous).
    this.compressedIn = Buffer.concat([this.compressedIn, block]);
    const all = inflateSync(this.compressedIn, { dictionary: SPDY_DICTIONARY, finishFlush: zconst.Z_SYNC_FLUSH });
    const raw = all.subarray(this.inflatedLen);
    this.inflatedLen = all.length;
    const headers: Record<string, string> = {};
    let off = 4;
    const n = raw.readUInt32BE(0);
    for (let i = 0; i < n; i++) {
      const nl = raw.readUInt32BE(off);
      const name = raw.toString('latin1', off + 4, off + 4 + nl);
      off += 4 + nl;
      const vl = raw.readUInt32BE(off);
      const value = raw.toString('latin1', off + 4, off + 4 + vl);
      off += 4 + vl;
      headers[name.toLowerCase()] = value;
    }
    return headers;
  }

  private deflateHeaders(headers: Record<string, string>): Buffer {
    const parts: Buffer[] = [u32(Object.keys(headers).length)];
    for (const [k, v] of Object.entries(headers)) {
      parts.push(u32(Buffer.byteLength(k)), Buffer.from(k), u32(Buffer.byteLength(v)), Buffer.from(v));
    }
    const raw = Buffer.concat(parts);
    const out: Buffer[] = [];
    if (!this.deflateStarted) {
      this.deflateStarted = true;
      // zlib header: deflate, 32K window, FDICT set (0x7820 % 31 === 0), then the dictionary's adler32.
      out.push(Buffer.from([0x78, 0x20]), u32(adler32(SPDY_DICTIONARY)));
    }
    for (let off = 0; off < raw.length; off += 0xffff) {
      const chunk = raw.subarray(off, off + 0xffff);
      const hdr = Buffer.alloc(5);
      hdr[0] = 0x00; // BFINAL=0, BTYPE=00 (stored)
      hdr.writeUInt16LE(chunk.length, 1);
      hdr.writeUInt16LE(~chunk.length & 0xffff, 3);
      out.push(hdr, chunk);
    }
    // What Z_SYNC_FLUSH emits: an empty stored block. Go's inflater hands out a stored block's bytes
    // only when it reaches the next block header, so without this marker the headers never arrive.
    out.push(Buffer.from([0x00, 0x00, 0x00, 0xff, 0xff]));
    return Buffer.concat(out);
  }

  writeControl(type: number, flags: number, payload: Buffer): void {
    if (this.closed) return;
    const h = Buffer.alloc(8);
    h.writeUInt16BE(0x8003, 0);
    h.writeUInt16BE(type, 2);
    h.writeUInt32BE(((flags & 0xff) << 24) | payload.length, 4);
    this.send(Buffer.concat([h, payload]));
  }

  writeData(id: number, data: Buffer, fin: boolean): void {
    if (this.closed) return;
    const h = Buffer.alloc(8);
    h.writeUInt32BE(id & 0x7fffffff, 0);
    h.writeUInt32BE((((fin ? FLAG_FIN : 0) & 0xff) << 24) | data.length, 4);
    this.send(Buffer.concat([h, data]));
  }

  /** Sends GOAWAY and tells the transport to finish. */
  goAway(): void {
    this.writeControl(SPDY.GOAWAY, 0, u32(this.lastStreamId, 0));
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.streams.values()) s.receiveReset();
    this.streams.clear();
    this.onClose();
  }
}

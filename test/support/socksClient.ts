/**
 * A SOCKS5 client built on the codec, for tests that assert the exact bytes a server answers: the
 * method it selects, the RFC 1929 status, the reply code. Each step resolves with what the server said
 * (or `closed` when it hung up first), never a guess from a client library's error text.
 *
 * @module
 * @example
 *   const c = await SocksClient.connect('127.0.0.1', port);
 *   assert.equal(await c.greet([0x02]), 0x02);
 *   assert.equal(await c.login(token), 0x00);
 *   assert.equal(await c.request('connect', 'node1', 22), 0x00);
 */
import net from 'node:net';
import { once } from 'node:events';
import {
  encodeGreeting,
  encodeRequest,
  encodeUserPass,
  parseMethodSelection,
  parseReply,
  parseUserPassStatus,
  type CommandName,
  type ParseResult,
} from '../../src/doors/socks5Codec.js';
import { withDeadline } from './proc.js';

export class SocksClient {
  private buffer = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | undefined;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, c]);
      this.wake?.();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake?.();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }

  static async connect(host: string, port: number): Promise<SocksClient> {
    const socket = net.connect({ host, port, allowHalfOpen: true });
    await once(socket, 'connect');
    return new SocksClient(socket);
  }

  /** Sends a greeting; resolves with the selected method (0xFF: none acceptable) or 'closed'. */
  async greet(methods: number[]): Promise<number | 'closed'> {
    this.socket.write(encodeGreeting(methods));
    const m = await this.next(parseMethodSelection);
    return m === 'closed' ? m : m.method;
  }

  /** RFC 1929 with the token split over username and password when it is longer than 255 bytes. */
  async login(token: string): Promise<number | 'closed'> {
    const cut = Math.max(0, token.length - 255);
    this.socket.write(encodeUserPass(token.slice(0, cut), token.slice(cut)));
    const s = await this.next(parseUserPassStatus);
    return s === 'closed' ? s : s.status;
  }

  /** Sends a request; resolves with the reply code (REP) or 'closed'. */
  async request(command: CommandName, host: string, port: number): Promise<number | 'closed'> {
    this.socket.write(encodeRequest({ command, host, port }));
    const r = await this.next(parseReply);
    return r === 'closed' ? r : r.reply;
  }

  /** Everything after the reply until the server's EOF. */
  async rest(): Promise<Buffer> {
    await this.until(() => this.ended);
    return this.buffer;
  }

  close(): void {
    this.socket.destroy();
  }

  private async next<T>(parse: (b: Uint8Array) => ParseResult<T>): Promise<T | 'closed'> {
    let out: T | 'closed' | undefined;
    await this.until(() => {
      const r = parse(this.buffer);
      if (r.kind === 'ok') {
        this.buffer = this.buffer.subarray(r.consumed);
        out = r.value;
        return true;
      }
      if (r.kind === 'error') throw new Error(`bad SOCKS5 answer: ${r.reason}`);
      if (this.ended) {
        out = 'closed';
        return true;
      }
      return false;
    });
    return out!;
  }

  private until(done: () => boolean): Promise<void> {
    return withDeadline(
      new Promise<void>((resolve, reject) => {
        const check = () => {
          try {
            if (done()) {
              this.wake = undefined;
              resolve();
            }
          } catch (err) {
            reject(err);
          }
        };
        this.wake = check;
        check();
      }),
      15_000,
      'SOCKS5 answer',
    );
  }
}

/**
 * An HTTP/2 tunnel stream dressed as a socket, so Node's HTTP/1.1 machinery (an `http.Server` on the
 * agent, an `http.Agent` pool on the hub) can run over it.
 *
 * Why not hand the Http2Stream over as it is: an Http2Stream has a native `_handle`, and
 * `http.Server` then lets its parser consume that handle directly; on Node 20 the first response
 * chunk written that way arrives as garbage ("HPE_INVALID_CONSTANT: Expected HTTP/"). This wrapper has
 * no handle, only buffers, so both sides take their plain JavaScript path. It also supplies the socket
 * methods `http.Agent` calls on pooled connections (`setKeepAlive`, `ref`, `unref`), which a stream
 * does not have.
 *
 * Half-close is kept: `end()` sends END_STREAM and the other direction stays open. A stream reset by
 * the peer (any code but NO_ERROR) destroys the wrapper with an error, so a cut-off response is never
 * taken for a complete one (also when it was reset before it was wrapped); destroying the wrapper resets
 * the stream (CANCEL).
 */
import { constants as h2c, type Http2Stream } from 'node:http2';
import { Duplex } from 'node:stream';

export interface StreamSocket extends Duplex {
  setTimeout(ms: number, cb?: () => void): this;
  setKeepAlive(): this;
  setNoDelay(): this;
  ref(): this;
  unref(): this;
  /** The tunnel stream underneath. */
  readonly stream: Http2Stream;
  /** Free-form tag set by the opener (the hub records which agent a pooled stream goes to). */
  tag?: string;
}

/** Larger than the 16 KiB default: fewer pause/resume turns per megabyte (a 1,000-object list is ~1 MiB). */
const BUFFER_BYTES = 256 * 1024;

export function streamSocket(stream: Http2Stream): StreamSocket {
  const socket = new Duplex({
    allowHalfOpen: true,
    readableHighWaterMark: BUFFER_BYTES,
    writableHighWaterMark: BUFFER_BYTES,
    read() {
      stream.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      stream.write(chunk, cb);
    },
    writev(chunks, cb) {
      stream.write(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk as Buffer)), cb);
    },
    final(cb) {
      stream.end(cb);
    },
    destroy(err, cb) {
      if (!stream.destroyed && !stream.closed) stream.close(h2c.NGHTTP2_CANCEL);
      cb(err);
    },
  }) as StreamSocket;
  stream.on('data', (chunk: Buffer) => {
    if (!socket.push(chunk)) stream.pause();
  });
  stream.on('end', () => socket.push(null));
  stream.on('error', (err) => socket.destroy(err));
  const onClose = () => {
    if (stream.rstCode !== h2c.NGHTTP2_NO_ERROR) socket.destroy(new Error(`tunnel stream reset (code ${stream.rstCode})`));
    else if (!socket.readableEnded && socket.readableLength === 0 && !stream.readableEnded) socket.destroy();
  };
  // A stream can close between the answer that opened it and its wrapping (an agent that answers and
  // stops in one turn): its 'close' has been emitted already, and the wrapper fails now.
  if (stream.destroyed) process.nextTick(onClose);
  else stream.on('close', onClose);
  // One listener for the stream's idle timer; setTimeout below only re-arms it (http2's own
  // setTimeout(ms, cb) would add a listener per call, and http.Agent calls it on every reuse).
  stream.on('timeout', () => socket.emit('timeout'));
  Object.assign(socket, {
    stream,
    // As net.Socket's: setTimeout(0, cb) removes cb. Node's HTTP client takes its request's timeout
    // listener off a pooled socket that way when a response ends; adding it instead left one more
    // listener per reuse (MaxListenersExceededWarning after ten requests on one pooled stream).
    setTimeout(ms: number, cb?: () => void) {
      (socket as StreamSocket & { timeout?: number }).timeout = ms;
      stream.setTimeout(ms);
      if (cb && ms === 0) socket.off('timeout', cb);
      else if (cb) socket.once('timeout', cb);
      return socket;
    },
    setKeepAlive: () => socket,
    setNoDelay: () => socket,
    ref: () => socket,
    unref: () => socket,
  });
  return socket;
}

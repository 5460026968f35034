/**
 * The upstream every benchmark path ends at (same process for all paths, so its cost is shared).
 * One TCP port; the first byte of a connection picks the mode:
 *
 *   'D' + u64 N   download: the target sends N bytes (a reused buffer, backpressure honoured), then ends
 *   'U'           upload: the target reads until EOF, answers the count as u64, then ends
 *   'E'           echo: everything after the 'E' comes back; EOF is answered with EOF (half-close kept)
 *
 * Prints one JSON line `{"listening":PORT}` when ready.
 *
 *   node --import tsx bench/lib/target.ts [PORT]
 */
import net from 'node:net';

const CHUNK = Buffer.alloc(1 << 20, 0x5a);

function download(socket: net.Socket, total: bigint): void {
  let left = total;
  const pump = (): void => {
    while (left > 0n) {
      const n = left > BigInt(CHUNK.length) ? CHUNK.length : Number(left);
      left -= BigInt(n);
      if (!socket.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        socket.once('drain', pump);
        return;
      }
    }
    socket.end();
  };
  pump();
}

function upload(socket: net.Socket, first: Buffer): void {
  let count = BigInt(first.length);
  socket.on('data', (c: Buffer) => void (count += BigInt(c.length)));
  socket.once('end', () => {
    const out = Buffer.alloc(8);
    out.writeBigUInt64BE(count);
    socket.end(out);
  });
}

function echo(socket: net.Socket, first: Buffer): void {
  if (first.length) socket.write(first);
  socket.pipe(socket);
}

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
  socket.on('error', () => socket.destroy());
  let head: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    head = head.length ? Buffer.concat([head, chunk]) : chunk;
    const mode = String.fromCharCode(head[0]!);
    if (mode === 'D') {
      if (head.length < 9) return;
      socket.off('data', onData);
      socket.resume();
      return download(socket, head.readBigUInt64BE(1));
    }
    socket.off('data', onData);
    if (mode === 'U') return upload(socket, head.subarray(1));
    if (mode === 'E') {
      socket.pause();
      return echo(socket, head.subarray(1));
    }
    socket.destroy();
  };
  socket.on('data', onData);
  // A download request may be answered before the client half-closes: ignore a bare EOF.
  socket.on('end', () => undefined);
});
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ listening: (server.address() as net.AddressInfo).port }) + '\n');
});

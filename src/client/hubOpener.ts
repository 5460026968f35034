/**
 * The client side's `Opener`: each stream is one HTTP CONNECT through the hub's HTTPS port, carrying the
 * caller's own token. `warren socks` hands it to the same SOCKS5 door the hub runs, and `warren forward`
 * calls it per accepted connection, so grants, routing and audit are the hub's, per stream.
 *
 * A refusal arrives as the hub's JSON body `{code, message}` and is rethrown as that WarrenError, so a
 * SOCKS client gets the reply the error registry gives the code (no grant 0x02, unknown host 0x04,
 * refused by the target 0x05, …), the same byte it would get from the hub's own SOCKS5 port.
 */
import type { Duplex } from 'node:stream';
import { WarrenError } from '../shared/errors.js';
import { relay } from '../tunnel/relay.js';
import { openThroughHub } from './connectThroughHub.js';
import type { OpenRequest, Opener, OpenedStream, RelayResult } from '../doors/door.js';
import type { HubEndpoint } from '../tunnel/dialHub.js';

export class HubClientOpener implements Opener {
  constructor(
    private readonly endpoint: HubEndpoint,
    private readonly token: string,
  ) {}

  async open(req: OpenRequest): Promise<OpenedStream> {
    const { socket, head } = await openThroughHub(this.endpoint, this.token, req.target);
    // The HTTP client has let go of the socket but left it flowing: pause before any I/O can run, so
    // nothing the target sends is emitted to no one before the relay attaches.
    socket.pause();
    if (head.length > 0) socket.unshift(head);
    if (req.signal?.aborted) {
      socket.destroy();
      throw new WarrenError('WARREN_E_TUNNEL_LOST', 'the client went away while the stream was opening');
    }
    return {
      agent: 'hub',
      stream: socket,
      relay: (client: Duplex) => relayCounts(client, socket),
    };
  }
}

async function relayCounts(client: Duplex, stream: Duplex): Promise<RelayResult> {
  const counts = await relay(client, stream);
  return { bytesIn: counts.aToB, bytesOut: counts.bToA, reason: counts.error ? `aborted: ${counts.error.message}` : 'closed' };
}

/**
 * The load balancer of `bench:scale --hubs` in a process of its own (forked, IPC), so that its two
 * sockets per agent count against this process's open-file limit and not the bench's: with a hard
 * limit of 20,000, 10,000 agents need two of them, each in front of every hub.
 *
 *   argv: the hubs' ports           ← { kind: 'listening', port }     then it runs until its IPC channel closes
 */
import { startBalancer } from '../../test/support/tcpBalancer.js';

const lb = await startBalancer(process.argv.slice(2).map(Number));
process.send!({ kind: 'listening', port: lb.port });
process.once('disconnect', () => {
  lb.close();
  process.exit(0);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type os from 'node:os';
import { checkOwnedSourceIps, localAddresses } from './sourceIps.js';

const iface = (address: string, family: 'IPv4' | 'IPv6'): os.NetworkInterfaceInfo =>
  ({ address, family, netmask: '', mac: '', internal: false, cidr: null, ...(family === 'IPv6' ? { scopeid: 0 } : {}) }) as os.NetworkInterfaceInfo;

const interfaces = { lo: [iface('127.0.0.1', 'IPv4'), iface('::1', 'IPv6')], eth0: [iface('10.9.0.5', 'IPv4'), iface('fe80::1%eth0', 'IPv6'), iface('fd00:0::7', 'IPv6')] };

test('local addresses are canonical, without zone ids', () => {
  assert.deepEqual([...localAddresses(interfaces)].sort(), ['10.9.0.5', '127.0.0.1', '::1', 'fd00::7', 'fe80::1'].sort());
});

test('owned addresses pass; one the host lacks is named with the command that adds it', () => {
  checkOwnedSourceIps(['10.9.0.5', 'fd00::7'], interfaces);
  assert.throws(() => checkOwnedSourceIps(['10.9.0.5', '10.9.0.6'], interfaces), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'WARREN_E_CONFIG');
    assert.match(err.message, /--source-ip 10\.9\.0\.6: not an address of this host \(add it first, e\.g\. `ip addr add 10\.9\.0\.6\/32 dev eth0`/);
    return true;
  });
});

test('the real host owns its loopback address', () => {
  checkOwnedSourceIps(['127.0.0.1']);
});

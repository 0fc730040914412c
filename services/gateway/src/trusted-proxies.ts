import { isIP } from 'node:net';
import { ConfigError } from '@berth/service-kit';

/** Names proxy-addr (Fastify's trustProxy) understands for address ranges. */
const RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

function validEntry(entry: string): boolean {
  if (RANGES.has(entry)) return true;
  const [address, bits, extra] = entry.split('/');
  if (extra !== undefined || !address) return false;
  const version = isIP(address);
  if (version === 0) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return /^\d{1,3}$/.test(bits) && n <= (version === 4 ? 32 : 128);
}

/**
 * TRUSTED_PROXIES as Fastify's trustProxy: addresses or CIDR ranges whose X-Forwarded-For the
 * gateway believes. Empty means none: the client address is the socket's, whatever headers say.
 */
export function parseTrustedProxies(value: string): string[] | false {
  const entries = value
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  for (const entry of entries) {
    if (!validEntry(entry)) {
      throw new ConfigError(
        `TRUSTED_PROXIES has "${entry}", which is not an IP address, a CIDR range or one of loopback, linklocal, uniquelocal`,
      );
    }
  }
  return entries.length > 0 ? entries : false;
}

/**
 * The TRUSTED_PROXIES entries that stand for more than one host: every host in them may write the
 * X-Forwarded-For the gateway believes, and so choose the address it is rate-limited as.
 */
export function broadEntries(entries: string[] | false): string[] {
  if (!entries) return [];
  return entries.filter((entry) => {
    if (RANGES.has(entry)) return true;
    const [address, bits] = entry.split('/');
    if (bits === undefined || !address) return false;
    return Number(bits) < (isIP(address) === 4 ? 32 : 128);
  });
}

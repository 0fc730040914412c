import { statfs } from 'node:fs/promises';
import { advisory, type ReadinessCheck } from '@berth/service-kit';
import { Gauge, type Registry } from 'prom-client';

/** Bytes an unprivileged process may still write on the file system that holds `root`. */
export async function freeBytes(root: string): Promise<number> {
  const { bavail, bsize } = await statfs(root);
  return bavail * bsize;
}

/**
 * The volume's free space in /readyz (advisory: reads go on while it is low, so the replica stays
 * in rotation and says "degraded") and as images_volume_free_bytes for alerts.
 */
export function volumeSpace(root: string, minFreeBytes: number, registry: Registry): ReadinessCheck {
  new Gauge({
    name: 'images_volume_free_bytes',
    help: 'Bytes still free on the image volume (VOLUME_MIN_FREE_BYTES is the readiness warning line)',
    registers: [registry],
    async collect() {
      this.set(await freeBytes(root));
    },
  });
  return advisory(async () => {
    const free = await freeBytes(root);
    if (free < minFreeBytes) {
      throw new Error(
        `${free} bytes free on the image volume, under VOLUME_MIN_FREE_BYTES (${minFreeBytes}); uploads and imports fail with 507 once it is full`,
      );
    }
  });
}

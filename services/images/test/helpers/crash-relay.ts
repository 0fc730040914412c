// A relay that dies between publishing a batch and marking it sent: run as its own process by the
// events outage test, which then checks that the republish is dropped as a duplicate.
// Arguments: <database url> <nats url> <stream settings as JSON>
import { createPool } from '@berth/service-kit';
import { NatsClient } from '../../src/events/nats.ts';
import { OutboxRelay } from '../../src/events/relay.ts';
import { silentLog } from './events.ts';

const [databaseUrl, natsUrl, streamJson] = process.argv.slice(2) as [string, string, string];
const pool = createPool({ connectionString: databaseUrl, applicationName: 'berth-crash-relay' });
const nats = new NatsClient({ url: natsUrl, name: 'crash-relay' }, silentLog);
nats.start();
await nats.ready();
const relay = new OutboxRelay({
  pool,
  nats,
  stream: JSON.parse(streamJson),
  settings: { batch: 1000, pollMs: 50, publishTimeoutMs: 2000, retentionMs: 3600_000, pruneEveryMs: 3600_000 },
  log: silentLog,
  hooks: {
    // every PubAck is in; the transaction that marks the rows sent never commits
    afterPublish: (rows) => {
      process.stdout.write(`published ${rows.length}\n`);
      process.kill(process.pid, 'SIGKILL');
    },
  },
});
await relay.publishBatch();
process.stdout.write('not killed\n');
process.exit(1);

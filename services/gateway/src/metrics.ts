import { Counter, Gauge, type Registry } from 'prom-client';
import type { CircuitState } from './breaker.ts';

const STATE_VALUE: Record<CircuitState, number> = { closed: 0, 'half-open': 1, open: 2 };

/** The gateway's own Prometheus series: circuit breakers per upstream and rate-limit refusals. */
export interface GatewayMetrics {
  /** A breaker changed state. */
  circuit(upstream: string, state: CircuitState): void;
  /** A request was refused with 429. */
  rateLimited(): void;
}

/** Registers the series on the app's registry; every deployed upstream starts with a closed circuit. */
export function gatewayMetrics(registry: Registry, upstreams: string[], openStreams = () => 0): GatewayMetrics {
  new Gauge({
    name: 'gateway_event_streams',
    help: 'Event streams this gateway holds open now (EVENT_STREAMS_MAX at most)',
    registers: [registry],
    collect() {
      this.set(openStreams());
    },
  });
  const state = new Gauge({
    name: 'gateway_circuit_state',
    help: 'Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open',
    labelNames: ['upstream'] as const,
    registers: [registry],
  });
  const opens = new Counter({
    name: 'gateway_circuit_opens_total',
    help: 'Times the circuit to an upstream opened',
    labelNames: ['upstream'] as const,
    registers: [registry],
  });
  const limited = new Counter({
    name: 'gateway_rate_limited_total',
    help: 'Requests refused with 429 for going over the per-client rate limit',
    registers: [registry],
  });
  for (const upstream of upstreams) {
    state.labels(upstream).set(0);
    opens.labels(upstream).inc(0);
  }
  return {
    circuit(upstream, to) {
      state.labels(upstream).set(STATE_VALUE[to]);
      if (to === 'open') opens.labels(upstream).inc();
    },
    rateLimited: () => limited.inc(),
  };
}

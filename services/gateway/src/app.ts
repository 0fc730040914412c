import { createService } from '@berth/service-kit';
import { type GatewayConfig, upstreams } from './config.ts';
import { refuseDotSegments } from './forward.ts';
import { upstreamChecks } from './readiness.ts';
import { proxyRoutes } from './routes/proxy.ts';

/** Builds the gateway: one URL in front of every service; /readyz aggregates theirs. */
export function buildApp(config: GatewayConfig) {
  const list = upstreams(config);
  const app = createService({
    name: 'gateway',
    logLevel: config.LOG_LEVEL,
    readiness: upstreamChecks(list, config.READY_TIMEOUT_MS),
    // the upstreams' own checks have READY_TIMEOUT_MS; give the aggregate a little more
    readinessTimeoutMs: config.READY_TIMEOUT_MS + 250,
  });
  app.addHook('onRequest', refuseDotSegments);
  proxyRoutes(app, list, config);
  return app;
}

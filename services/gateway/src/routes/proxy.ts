import { httpError } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import type { GatewayConfig, Upstream } from '../config.ts';
import { createForwarder } from '../forward.ts';

const METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS'];

/** Bodies are not parsed at the gateway: they stream to the upstream untouched. */
function passBodiesThrough(scope: FastifyInstance) {
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('*', (_request, _payload, done) => done(null));
}

/** Registers every upstream's routes, each in its own scope; pools are closed with the app. */
export function proxyRoutes(app: FastifyInstance, list: Upstream[], config: GatewayConfig) {
  for (const upstream of list) {
    app.register(async (scope) => {
      passBodiesThrough(scope);
      if (!upstream.url) {
        const notDeployed = async () => {
          throw httpError(
            503,
            'SERVICE_NOT_DEPLOYED',
            `The ${upstream.name} service is not deployed here; set ${upstream.env}`,
          );
        };
        for (const url of upstream.routes) scope.route({ method: METHODS, url, handler: notDeployed });
        return;
      }
      const { pool, handler } = createForwarder(upstream, config);
      for (const url of upstream.routes) scope.route({ method: METHODS, url, handler });
      scope.addHook('onClose', async () => pool.close());
    });
  }
}

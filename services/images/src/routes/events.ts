import { ErrorResponse } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import { type Static, Type } from 'typebox';
import type { EventFeed } from '../events/feed.ts';
import { EVENT_TYPES, type EventType } from '../events/outbox.ts';
import { Dataset } from '../schemas.ts';

const Sequence = '^[0-9]{1,15}$';

/** GET /images/events query. */
const EventsQuery = Type.Object(
  {
    since: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: Number.MAX_SAFE_INTEGER,
        description: 'must be a stream sequence (a whole number, 0 for the whole stream)',
      }),
    ),
    dataset: Type.Optional(Dataset),
    type: Type.Optional(
      Type.Union(
        EVENT_TYPES.map((t) => Type.Literal(t)),
        { description: 'must be one of created, updated, deleted' },
      ),
    ),
  },
  { additionalProperties: false },
);

const EventsHeaders = Type.Object({
  'last-event-id': Type.Optional(
    Type.String({ pattern: Sequence, description: 'must be the id of an event the feed sent (a whole number)' }),
  ),
});

/** GET /images/events: the live feed as Server-Sent Events. */
export function eventRoutes(app: FastifyInstance, feed: EventFeed) {
  app.get<{ Querystring: Static<typeof EventsQuery>; Headers: Static<typeof EventsHeaders> }>(
    '/images/events',
    {
      schema: {
        summary:
          'Live feed of image events as Server-Sent Events (id = stream sequence, event = type, data = JSON); resumes after Last-Event-ID or ?since=, else new events only',
        querystring: EventsQuery,
        headers: EventsHeaders,
        response: {
          200: Type.String({ description: 'text/event-stream' }),
          400: ErrorResponse,
          503: ErrorResponse,
        },
      },
    },
    async (request, reply) => {
      const lastEventId = request.headers['last-event-id'];
      const { since, dataset, type } = request.query;
      // an EventSource that reconnects sends Last-Event-ID and the first URL again: the header wins
      const after = lastEventId === undefined ? since : Number(lastEventId);
      await feed.serve(request, reply, { after, dataset, type: type as EventType | undefined });
    },
  );
}

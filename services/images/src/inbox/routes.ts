import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { Errors } from '../schemas.ts';
import type { Inbox } from './inbox.ts';

/** How many unclaimable files GET /images/inbox lists at most. */
const LISTED = 100;

/** GET /images/inbox answer. */
export const InboxStatus = Type.Object({
  enabled: Type.Boolean({ description: 'false when INBOX_DIR is not set' }),
  unclaimable: Type.Object({
    count: Type.Integer({ description: 'files the service cannot move out of their folder, so cannot take in' }),
    files: Type.Array(
      Type.Object({
        file: Type.String({ description: 'path relative to the inbox' }),
        code: Type.String({ description: 'the error of the failed move, e.g. EACCES' }),
        message: Type.String({ description: 'what is wrong and how to fix it' }),
        since: Type.String({ format: 'date-time' }),
      }),
      { description: `the first ${LISTED}` },
    ),
  }),
});

/** GET /images/inbox: whether the inbox is on, and the files it cannot take in and why. */
export function inboxRoutes(app: FastifyInstance, inbox: Inbox | undefined) {
  app.get(
    '/images/inbox',
    {
      schema: {
        summary: 'The inbox: whether it is on, and the files it cannot claim (with how to fix each)',
        response: { 200: InboxStatus, ...Errors },
      },
    },
    async () => ({
      enabled: inbox !== undefined,
      unclaimable: inbox?.unclaimable(LISTED) ?? { count: 0, files: [] },
    }),
  );
}

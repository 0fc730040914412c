import { get } from 'node:http';

/** One answer, as a client sees it. */
export interface Probe {
  status: number;
  body: string;
  /** False when the server closes the connection after answering. */
  keepAlive: boolean;
}

/** Sends one GET on a fresh connection and reads the whole answer. */
export function probe(url: string, timeoutMs = 5000): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false, headers: { connection: 'keep-alive' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const keepAlive = res.headers.connection?.toLowerCase() !== 'close';
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), keepAlive });
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`No answer from "${url}" within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** Checks that url answers 200 with a body matching expected; throws naming what differed. */
export async function expectAnswer(url: string, expected: RegExp): Promise<Probe> {
  const answer = await probe(url);
  if (answer.status !== 200 || !expected.test(answer.body)) {
    throw new Error(`"${url}" answered ${answer.status} ${JSON.stringify(answer.body.slice(0, 200))}, not ${expected}`);
  }
  return answer;
}

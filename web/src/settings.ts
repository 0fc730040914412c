const TOKEN_KEY = 'berth.apiToken';

/** The API token writes are sent with; kept in this browser only (localStorage), never in a cookie. */
export function getToken(): string {
  try {
    return localStorage.getItem(TOKEN_KEY) ?? '';
  } catch {
    return '';
  }
}

/** Saves the token, or forgets it when empty. */
export function setToken(token: string): void {
  const value = token.trim();
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

const READ_TOKEN_KEY = 'berth.readToken';

/**
 * The token reads are sent with, for a gateway with READS_REQUIRE_TOKEN on: one of the "read" scope
 * is enough. Kept apart from the write token because images and the live feed carry it in their
 * URLs (?access_token=), which <img> and EventSource need; empty when reads are open.
 */
export function getReadToken(): string {
  try {
    return localStorage.getItem(READ_TOKEN_KEY) ?? '';
  } catch {
    return '';
  }
}

/** Saves the read token, or forgets it when empty. */
export function setReadToken(token: string): void {
  const value = token.trim();
  if (value) localStorage.setItem(READ_TOKEN_KEY, value);
  else localStorage.removeItem(READ_TOKEN_KEY);
}

/** A URL of this origin that reads, with the read token added when there is one (for <img> and EventSource). */
export function readUrl(path: string): string {
  const token = getReadToken();
  if (!token) return path;
  return `${path}${path.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(token)}`;
}

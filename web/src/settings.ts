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

/**
 * Fetching JSON documents from identity providers (JWKS, OIDC discovery, token
 * introspection) with a hard time bound and a size bound, and reading how long the
 * provider says the answer may be kept (Cache-Control max-age).
 */

/** An identity provider could not be asked or gave an unusable answer. */
export class ProviderUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProviderUnavailable";
  }
}

/** A JSON answer and its lifetime in ms from Cache-Control (null when not stated). */
export interface RemoteJson {
  status: number;
  body: unknown;
  maxAgeMs: number | null;
}

/** Largest document read from a provider. */
const MAX_BYTES = 1024 * 1024;

/** Fetches `url` and parses JSON within `timeoutMs`; throws ProviderUnavailable on any failure. */
export async function fetchJson(url: string, timeoutMs: number, init: RequestInit = {}, okStatuses: readonly number[] = [200]): Promise<RemoteJson> {
  const signal = AbortSignal.timeout(timeoutMs);
  let response: Response;
  try {
    response = await fetch(url, { ...init, signal, redirect: "manual", headers: { accept: "application/json", ...(init.headers as Record<string, string> | undefined) } });
  } catch (error) {
    throw new ProviderUnavailable(signal.aborted ? `no answer from ${url} within ${timeoutMs} ms` : `cannot reach ${url}: ${(error as Error).message}`);
  }
  if (!okStatuses.includes(response.status)) {
    await response.body?.cancel().catch(() => {});
    throw new ProviderUnavailable(`${url} answered ${response.status}`);
  }
  let text: string;
  try {
    const declared = Number(response.headers.get("content-length") ?? 0);
    if (declared > MAX_BYTES) throw new Error("too large");
    const bytes = await response.arrayBuffer();
    if (bytes.byteLength > MAX_BYTES) throw new Error("too large");
    text = new TextDecoder().decode(bytes);
  } catch (error) {
    throw new ProviderUnavailable(signal.aborted ? `${url} did not finish its answer within ${timeoutMs} ms` : `cannot read the answer of ${url}: ${(error as Error).message}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ProviderUnavailable(`${url} did not answer JSON`);
  }
  return { status: response.status, body, maxAgeMs: maxAgeOf(response.headers.get("cache-control")) };
}

/** max-age of a Cache-Control value in ms; 0 for no-store/no-cache; null when absent. */
export function maxAgeOf(cacheControl: string | null): number | null {
  if (!cacheControl) return null;
  const lower = cacheControl.toLowerCase();
  if (/(^|,)\s*(no-store|no-cache)\s*(,|$)/.test(lower)) return 0;
  const match = /(^|,)\s*(s-maxage|max-age)\s*=\s*"?(\d+)"?/.exec(lower);
  return match ? Number(match[3]) * 1000 : null;
}

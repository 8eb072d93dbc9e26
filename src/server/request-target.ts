/**
 * Checks of the request line and framing headers that Bun's HTTP parser lets through,
 * answered with a 400 problem before any routing:
 *
 * - a `Host` that is not a valid authority (Bun then hands over a relative `request.url`)
 *   or that was sent twice (Bun joins the values with a comma);
 * - a `%` in the request target not followed by two hex digits;
 * - a `Content-Length` sent twice (Bun joins even identical values, and forwarding
 *   `5, 5` upstream invites a framing disagreement).
 *
 * A request without any `Host` (HTTP/1.0; Bun refuses HTTP/1.1 without one) is served
 * with the listener's own address as its authority.
 */
import { problem } from "../core/problem.ts";

/** A `%` not followed by two hex digits. */
const BAD_PERCENT = /%(?![0-9A-Fa-f]{2})/;

/**
 * Returns the parsed URL of the request, or a 400 problem response.
 * `fallbackAuthority` (e.g. `127.0.0.1:8080`) stands in for a missing Host.
 */
export function parseRequestTarget(request: Request, scheme: string, fallbackAuthority: string, requestId: string): URL | Response {
  const raw = request.url;
  const host = request.headers.get("host");
  if (host !== null && host.includes(",")) return badRequest("The request has more than one Host header.", requestId);
  let url: URL;
  try {
    if (raw.startsWith("/")) {
      if (host !== null) return badRequest("The Host header is not a valid host name.", requestId);
      url = new URL(`${scheme}://${fallbackAuthority}${raw}`);
    } else {
      url = new URL(raw);
    }
  } catch {
    return badRequest("The request target or Host header is not a valid URL.", requestId);
  }
  const pathStart = raw.startsWith("/") ? 0 : raw.indexOf("/", raw.indexOf("//") + 2);
  if (pathStart >= 0 && BAD_PERCENT.test(raw.slice(pathStart))) {
    return badRequest("The request target has a '%' that is not followed by two hex digits.", requestId);
  }
  if (request.headers.get("content-length")?.includes(",")) {
    return badRequest("The request has more than one Content-Length header.", requestId);
  }
  return url;
}

function badRequest(detail: string, requestId: string): Response {
  return problem({ status: 400, kind: "bad-request", detail, requestId, headers: { connection: "close" } });
}

/**
 * Test helper: sends raw bytes over a TCP socket and reads back at most one HTTP
 * response, for requests no HTTP client library would send.
 */
import { connect } from "node:net";

/** What came back on the socket. */
export interface RawResult {
  /** Status of the first response, or null if none arrived. */
  status: number | null;
  /** Response headers, names lower-cased (empty without a response). */
  headers: Record<string, string>;
  /** Response body as text (by Content-Length; whatever arrived otherwise). */
  body: string;
  /** The connection was closed (by the server, or reset) before `waitMs`. */
  closed: boolean;
  /** The whole byte stream received, as latin1 text. */
  raw: string;
}

export interface RawOptions {
  /** Half-close the socket after writing (the client says it sends no more). */
  endAfterWrite?: boolean;
  /** Give up waiting after this long (default 3000 ms). */
  waitMs?: number;
}

/** Sends `data` to 127.0.0.1:`port` and resolves on a complete response, on close, or after `waitMs`. */
export function sendRaw(port: number, data: string | Uint8Array, options: RawOptions = {}): Promise<RawResult> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let raw = "";
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...parse(raw), closed, raw });
    };
    const timer = setTimeout(() => finish(false), options.waitMs ?? 3000);
    socket.on("data", (chunk) => {
      raw += chunk.toString("latin1");
      if (isComplete(raw)) finish(false);
    });
    socket.on("error", () => finish(true));
    socket.on("close", () => finish(true));
    socket.write(typeof data === "string" ? Buffer.from(data, "latin1") : data);
    if (options.endAfterWrite) socket.end();
  });
}

function parse(raw: string): Omit<RawResult, "closed" | "raw"> {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) return { status: null, headers: {}, body: "" };
  const [statusLine, ...lines] = raw.slice(0, end).split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? "")?.[1] ?? NaN);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers["content-length"] ?? NaN);
  const rest = raw.slice(end + 4);
  return { status: Number.isNaN(status) ? null : status, headers, body: Number.isNaN(length) ? rest : rest.slice(0, length) };
}

function isComplete(raw: string): boolean {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) return false;
  const match = /\r\ncontent-length:\s*(\d+)/i.exec(raw.slice(0, end));
  return match !== null && raw.length - (end + 4) >= Number(match[1]);
}

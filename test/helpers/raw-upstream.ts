/**
 * Test helpers at the byte level, for what Bun.serve and fetch will not produce or
 * hide: an upstream that writes exactly the response bytes a test gives it (hop-by-hop
 * headers, a declared length with a short body, a stall), and a client that sends
 * exact request bytes and returns every response header line, repeats included.
 */
import { connect } from "node:net";

/** A request as the raw upstream received it. */
export interface RawRequest {
  method: string;
  target: string;
  /** Header lines in arrival order, names lower-cased. */
  headers: [string, string][];
  /** The body, de-chunked when it came chunked. */
  body: Uint8Array;
}

/** Writes to the connection of one request; the handler decides when to end it. */
export interface RawReply {
  write(data: string | Uint8Array): void;
  end(): void;
}

/** A running raw upstream. */
export interface RawUpstream {
  url: string;
  port: number;
  seen: RawRequest[];
  stop(): void;
}

/** The value of header `name` (lower-case) in a header list, repeats joined with ", ". */
export function headerValue(headers: [string, string][], name: string): string | null {
  const values = headers.filter(([n]) => n === name).map(([, v]) => v);
  return values.length ? values.join(", ") : null;
}

/**
 * Starts a TCP server on 127.0.0.1 that parses one request per connection and hands
 * it to `onRequest`, which writes the response bytes itself.
 */
export function startRawUpstream(onRequest: (request: RawRequest, reply: RawReply) => void): RawUpstream {
  const seen: RawRequest[] = [];
  const server = Bun.listen<{ buffer: Buffer; done: boolean }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.data = { buffer: Buffer.alloc(0), done: false };
      },
      data(socket, chunk) {
        const state = socket.data;
        if (state.done) return;
        state.buffer = Buffer.concat([state.buffer, chunk]);
        const request = parseRequest(state.buffer);
        if (!request) return;
        state.done = true;
        seen.push(request);
        onRequest(request, {
          write: (data) => void socket.write(data),
          end: () => socket.end(),
        });
      },
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    port: server.port,
    seen,
    stop: () => server.stop(true),
  };
}

/** Parses a complete request from `buffer`, or returns null if more bytes are needed. */
function parseRequest(buffer: Buffer): RawRequest | null {
  const end = buffer.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const [requestLine, ...lines] = buffer.toString("latin1", 0, end).split("\r\n");
  const [method = "", target = ""] = (requestLine ?? "").split(" ");
  const headers = lines.map((line): [string, string] => {
    const colon = line.indexOf(":");
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
  });
  const rest = buffer.subarray(end + 4);
  const length = headerValue(headers, "content-length");
  if (length !== null) {
    if (rest.length < Number(length)) return null;
    return { method, target, headers, body: rest.subarray(0, Number(length)) };
  }
  if (headerValue(headers, "transfer-encoding")?.toLowerCase().includes("chunked")) {
    const body = dechunk(rest);
    return body ? { method, target, headers, body } : null;
  }
  return { method, target, headers, body: new Uint8Array(0) };
}

/** Decodes a complete chunked body (without trailers), or null if it is not complete yet. */
function dechunk(data: Buffer): Uint8Array | null {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = data.indexOf("\r\n", at);
    if (lineEnd < 0) return null;
    const size = parseInt(data.toString("latin1", at, lineEnd), 16);
    if (size === 0) return data.indexOf("\r\n", lineEnd + 2) >= 0 ? Buffer.concat(parts) : null;
    if (data.length < lineEnd + 2 + size + 2) return null;
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

/** A response as read from the socket by `rawExchange`. */
export interface RawResponse {
  status: number;
  /** Header lines in arrival order, names lower-cased. */
  headers: [string, string][];
  /** The body bytes after the head, as sent (not de-chunked). */
  body: string;
}

/**
 * Sends `request` (exact bytes) to 127.0.0.1:`port` and reads until the server closes
 * the connection; send `Connection: close` so it does. Gives up after `waitMs`.
 */
export function rawExchange(port: number, request: string, waitMs = 5_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete response within ${waitMs} ms`));
    }, waitMs);
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return reject(new Error(`no response head in ${JSON.stringify(text.slice(0, 200))}`));
      const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
      const headers = lines.map((line): [string, string] => {
        const colon = line.indexOf(":");
        return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
      });
      resolve({ status: Number(statusLine!.split(" ")[1]), headers, body: text.slice(end + 4) });
    });
    socket.write(Buffer.from(request, "latin1"));
  });
}

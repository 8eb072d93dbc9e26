/**
 * A TCP connect probe bounded by a timeout, used before sending to a cold target so
 * that an unreachable host fails within `timeouts.connect` instead of the longer
 * response timeout.
 */
import type { Target } from "./types.ts";

/** Resolves to null when a connection opened, "timeout", or an error code. */
export function probeConnect(target: Target, timeoutMs: number): Promise<null | "timeout" | string> {
  const url = new URL(target.origin);
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  const hostname = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: null | "timeout" | string, socket?: { end(): void }) => {
      if (settled) {
        socket?.end();
        return;
      }
      settled = true;
      clearTimeout(timer);
      socket?.end();
      resolve(result);
    };
    const timer = setTimeout(() => finish("timeout"), timeoutMs);
    Bun.connect({
      hostname,
      port,
      socket: {
        open: (socket) => finish(null, socket),
        data() {},
        error: (_socket, error) => finish((error as { code?: string }).code ?? error.message),
        connectError: (_socket, error) => finish((error as { code?: string }).code ?? error.message),
      },
    }).catch((error: { code?: string; message: string }) => finish(error.code ?? error.message));
  });
}

/**
 * A check, before any worker starts, that the listener addresses a config adds are
 * free. Workers bind with reusePort, so a worker that fails on its second listener may
 * already serve on its first; finding a taken port here keeps a start or rolling
 * restart from half-happening.
 */
import type { CompiledListener } from "../config/graph.ts";

/**
 * Returns one message per listener of `next` whose address:port is not served by
 * `current` and cannot be bound now (e.g. `listeners[1].port: 127.0.0.1:8443 is in use
 * (EADDRINUSE)`). Port 0 (any free port) is not checked.
 */
export function unavailableListeners(next: readonly CompiledListener[], current: readonly CompiledListener[]): string[] {
  const held = new Set(current.map((l) => `${l.address}:${l.port}`));
  const errors: string[] = [];
  next.forEach((listener, i) => {
    const key = `${listener.address}:${listener.port}`;
    if (listener.port === 0 || held.has(key)) return;
    try {
      // Without reusePort: a port held by anyone, even another Turnpike, counts as taken.
      const probe = Bun.listen({ hostname: listener.address, port: listener.port, socket: { data() {} } });
      probe.stop(true);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const reason = code === "EADDRINUSE" ? "is in use" : `cannot be bound (${code ?? (error as Error).message})`;
      errors.push(`listeners[${i}].port: ${key} ${reason}`);
    }
  });
  return errors;
}

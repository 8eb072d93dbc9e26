/**
 * Active health checks, run by the supervisor: one probe loop per target of every
 * upstream with `health_check.active`, however many workers serve. A target's state
 * changes after `unhealthy_threshold` failed probes in a row (or `healthy_threshold`
 * successes) and is written to its node-wide cell, which every worker reads when it picks
 * a target. Targets start healthy. A reload keeps the loops (and their counts) of
 * targets whose upstream, URL and check settings did not change.
 */
import type { UpstreamTls } from "../config/pem.ts";
import { probeConnect } from "./connect-probe.ts";
import type { TargetRuntime } from "./target.ts";
import type { CompiledUpstream } from "./types.ts";
import type { ActiveCheckSettings } from "./upstream.ts";

/**
 * Told of each verdict of this node's probes: on a change, and after every probe while
 * the loop's own verdict is "unhealthy" (a renewal). For sharing verdicts with a cluster.
 */
export type VerdictListener = (target: TargetRuntime, down: boolean, reason: string, intervalMs: number) => void;

/** The probe loops of the node. */
export class ActiveHealthChecks {
  /**
   * `onVerdict` hears this node's verdicts; `heldRemotely` tells a target whose state is
   * another node's verdict (kept when this node has no checks of its own).
   */
  constructor(
    private readonly onVerdict: VerdictListener = () => {},
    private readonly heldRemotely: (target: TargetRuntime) => boolean = () => false,
  ) {}

  readonly #loops = new Map<string, ProbeLoop>();
  #current: ReadonlyMap<string, CompiledUpstream> = new Map();
  readonly #watched = new WeakSet<object>();

  /**
   * Runs the checks of `upstreams` (a new config generation); stops those no longer
   * configured. Targets replaced later (service discovery) are followed.
   */
  apply(upstreams: ReadonlyMap<string, CompiledUpstream>): void {
    this.#current = upstreams;
    for (const upstream of upstreams.values()) {
      if (upstream.kind !== "http" || this.#watched.has(upstream)) continue;
      this.#watched.add(upstream);
      upstream.onTargetsChange(() => {
        if (this.#current.get(upstream.name) === upstream) this.apply(this.#current);
      });
    }
    const wanted = new Map<string, { target: TargetRuntime; settings: ActiveCheckSettings; tls: UpstreamTls | null }>();
    for (const upstream of upstreams.values()) {
      if (upstream.kind !== "http") continue;
      if (!upstream.activeCheck) {
        // Checks removed by a reload: their verdict goes with them.
        for (const target of upstream.targets) {
          if (target.activeDown() && !this.heldRemotely(target) && target.setActiveDown(false)) target.reportHealth(true, "active health checks are no longer configured");
        }
        continue;
      }
      for (const target of upstream.targets) {
        wanted.set(`${upstream.name}\n${target.url}\n${describe(upstream.activeCheck)}`, { target, settings: upstream.activeCheck, tls: upstream.tls });
      }
    }
    for (const [key, loop] of this.#loops) {
      if (wanted.has(key)) continue;
      loop.stop();
      this.#loops.delete(key);
    }
    for (const [key, { target, settings, tls }] of wanted) {
      const running = this.#loops.get(key);
      if (running) running.target = target;
      else {
        const loop = new ProbeLoop(target, settings, tls, this.onVerdict);
        this.#loops.set(key, loop);
        loop.start();
      }
    }
  }

  /** Stops every probe loop. */
  stop(): void {
    for (const loop of this.#loops.values()) loop.stop();
    this.#loops.clear();
  }
}

function describe(settings: ActiveCheckSettings): string {
  return JSON.stringify({ ...settings, expectedStatuses: [...settings.expectedStatuses] });
}

class ProbeLoop {
  #timer: ReturnType<typeof setTimeout> | null = null;
  #stopped = false;
  #successes = 0;
  #failures = 0;

  constructor(
    public target: TargetRuntime,
    private readonly settings: ActiveCheckSettings,
    private readonly tls: UpstreamTls | null,
    private readonly onVerdict: VerdictListener,
  ) {}

  start(): void {
    // Loops of many targets started at once are spread over the first interval's tenth.
    this.#schedule(Math.floor(Math.random() * Math.min(1000, this.settings.intervalMs / 10)));
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
  }

  #schedule(delay: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#probe(), delay);
    this.#timer.unref?.();
  }

  async #probe(): Promise<void> {
    const started = performance.now();
    const failure = await probe(this.target, this.settings, this.tls);
    if (this.#stopped) return;
    const s = this.settings;
    const target = this.target;
    if (failure === null) {
      this.#failures = 0;
      this.#successes++;
      if (target.activeDown() && this.#successes >= s.healthyThreshold && target.setActiveDown(false)) {
        const reason = `${this.#successes} probes in a row succeeded`;
        target.reportHealth(true, reason);
        this.onVerdict(target, false, reason, s.intervalMs);
      }
    } else {
      this.#successes = 0;
      this.#failures++;
      if (this.#failures >= s.unhealthyThreshold) {
        const reason = `${this.#failures} probes in a row failed; last: ${failure}`;
        if (!target.activeDown() && target.setActiveDown(true)) target.reportHealth(false, reason);
        this.onVerdict(target, true, reason, s.intervalMs);
      }
    }
    this.#schedule(Math.max(0, s.intervalMs - (performance.now() - started)));
  }
}

/** One probe: null when the target is healthy, else why not. */
async function probe(target: TargetRuntime, settings: ActiveCheckSettings, tls: UpstreamTls | null): Promise<string | null> {
  if (settings.type === "tcp") {
    const failure = await probeConnect(target, settings.timeoutMs);
    return failure === null ? null : failure === "timeout" ? `no connection within ${settings.timeoutMs} ms` : failure;
  }
  // An https target is probed at its own origin (its address, when found by DNS discovery).
  const origin = settings.type === "https" && !target.origin.startsWith("https:") ? `https://${target.host}` : target.origin;
  if (target.serverName && origin.startsWith("https:") && !tls?.serverName) tls = { rejectUnauthorized: true, ...tls, serverName: target.serverName };
  try {
    const response = await fetch(origin + target.basePath + settings.path, {
      headers: { host: settings.host ?? target.host, "user-agent": "turnpike-health-check" },
      redirect: "manual",
      decompress: false,
      signal: AbortSignal.timeout(settings.timeoutMs),
      ...(tls && origin.startsWith("https:") ? { tls } : {}),
    });
    void response.body?.cancel().catch(() => {});
    return settings.expectedStatuses.has(response.status) ? null : `status ${response.status}`;
  } catch (error) {
    const name = (error as Error).name;
    if (name === "TimeoutError" || name === "AbortError") return `no answer within ${settings.timeoutMs} ms`;
    return (error as { code?: string }).code ?? (error as Error).message;
  }
}

/**
 * Active health verdicts shared between the nodes of a cluster (`health_check.share:
 * cluster`, with the Hazelcast store). Run by the supervisor, beside the probe loops:
 *
 * - when a probe loop of this node changes a target's state, and after every probe while
 *   its own verdict is "unhealthy", the verdict is published on one store channel with
 *   this node's id and a lifetime (three probe intervals);
 * - a verdict from another node about a target of an upstream that shares health here is
 *   written to the target's node-wide cell, which every worker reads; the change is
 *   logged once, naming the node it came from;
 * - a remote "unhealthy" verdict that is not renewed within its lifetime (its node died,
 *   or stopped probing) expires and the target is healthy again;
 * - a verdict of this node's own probes replaces a remote one.
 */
import { hostname } from "node:os";
import type { Store } from "../store/types.ts";
import type { TargetRuntime } from "./target.ts";
import type { CompiledUpstream } from "./types.ts";

/** The store channel verdicts travel on. */
export const HEALTH_CHANNEL = "upstream-health";

interface Verdict {
  node: string;
  upstream: string;
  target: string;
  down: boolean;
  reason: string;
  ttlMs: number;
}

/** A remote verdict applied here: who said it and until when it holds. */
interface Applied {
  node: string;
  expiresAt: number;
}

export class ClusterHealth {
  /** This node's id in the messages it publishes. */
  readonly node = `${hostname()}:${process.pid}:${crypto.randomUUID().slice(0, 8)}`;
  #upstreams: ReadonlyMap<string, CompiledUpstream> = new Map();
  #store: Store | null = null;
  #unsubscribe: (() => void) | null = null;
  readonly #remote = new Map<string, Applied>();
  #sweeper: ReturnType<typeof setInterval> | null = null;
  /** Whether the last publish failed (so a cluster that is away is logged once, not per probe). */
  #publishFailing = false;

  constructor(private readonly warn: (message: string, fields: Record<string, unknown>) => void) {}

  /** Follows a config generation: `store` is the cluster store when some upstream shares health, else null. */
  apply(upstreams: ReadonlyMap<string, CompiledUpstream>, store: Store | null): void {
    this.#upstreams = upstreams;
    if (store !== this.#store) {
      this.#unsubscribe?.();
      this.#unsubscribe = null;
      this.#store = store;
      if (store) this.#unsubscribe = store.subscribe(HEALTH_CHANNEL, (message) => this.#receive(message));
    }
    if (store && !this.#sweeper) {
      this.#sweeper = setInterval(() => this.#expire(), 500);
      this.#sweeper.unref?.();
    }
    // Remote verdicts about upstreams no longer shared are forgotten (their cells stay as the probes left them).
    for (const key of this.#remote.keys()) {
      const [upstream] = key.split("\n");
      const compiled = upstreams.get(upstream!);
      if (!compiled || compiled.kind !== "http" || !compiled.shareHealth) this.#remote.delete(key);
    }
  }

  /** True when this node's probes of `upstream` are published. */
  shares(upstream: string): boolean {
    const compiled = this.#upstreams.get(upstream);
    return this.#store !== null && compiled?.kind === "http" && compiled.shareHealth;
  }

  /** A verdict of this node's own probes (published; it also replaces a remote verdict here). */
  local(target: TargetRuntime, down: boolean, reason: string, intervalMs: number): void {
    this.#remote.delete(key(target.upstream, target.url));
    if (!this.shares(target.upstream)) return;
    const verdict: Verdict = { node: this.node, upstream: target.upstream, target: target.url, down, reason, ttlMs: Math.max(3 * intervalMs, 1000) };
    this.#store!.publish(HEALTH_CHANNEL, JSON.stringify(verdict)).then(
      () => {
        this.#publishFailing = false;
      },
      (error) => {
        if (this.#publishFailing) return;
        this.#publishFailing = true;
        this.warn("cannot publish health verdicts to the cluster; other nodes keep theirs until they expire", { upstream: target.upstream, target: target.url, error: (error as Error).message });
      },
    );
  }

  /** Where the health state of a target comes from, for `GET /upstreams`. */
  source(upstream: string, target: string): { health_source: "local" | "remote"; health_node?: string } {
    const applied = this.#remote.get(key(upstream, target));
    return applied ? { health_source: "remote", health_node: applied.node } : { health_source: "local" };
  }

  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#store = null;
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = null;
    this.#remote.clear();
  }

  #receive(message: string): void {
    let verdict: Verdict;
    try {
      verdict = JSON.parse(message) as Verdict;
    } catch {
      return;
    }
    if (typeof verdict !== "object" || verdict === null || verdict.node === this.node || typeof verdict.upstream !== "string" || typeof verdict.target !== "string") return;
    const upstream = this.#upstreams.get(verdict.upstream);
    if (!upstream || upstream.kind !== "http" || !upstream.shareHealth) return;
    const target = upstream.targets.find((t) => t.url === verdict.target);
    if (!target) return;
    const k = key(upstream.name, target.url);
    const reason = `node ${verdict.node}: ${String(verdict.reason ?? "")}`;
    if (verdict.down === true) {
      const ttl = Math.min(Math.max(Number(verdict.ttlMs) || 0, 1000), 24 * 3600_000);
      this.#remote.set(k, { node: verdict.node, expiresAt: Date.now() + ttl });
      if (target.setActiveDown(true)) target.reportHealth(false, reason);
    } else if (verdict.down === false) {
      this.#remote.delete(k);
      if (target.setActiveDown(false)) target.reportHealth(true, reason);
    }
  }

  #expire(): void {
    const now = Date.now();
    for (const [k, applied] of this.#remote) {
      if (applied.expiresAt > now) continue;
      this.#remote.delete(k);
      const [name, url] = k.split("\n");
      const upstream = this.#upstreams.get(name!);
      const target = upstream?.kind === "http" ? upstream.targets.find((t) => t.url === url) : undefined;
      if (target?.setActiveDown(false)) target.reportHealth(true, `the verdict of node ${applied.node} expired without renewal`);
    }
  }
}

function key(upstream: string, target: string): string {
  return `${upstream}\n${target}`;
}

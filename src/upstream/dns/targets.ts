/**
 * The targets of an upstream with `discovery`: each target whose host is a name stands
 * for the addresses DNS gives for it (see discovery.ts); targets given as IP addresses
 * stay as written. Whenever a name's addresses change, the upstream gets the whole new
 * list of targets through `apply`.
 *
 * A discovered target keeps the name in its `host` (the Host header the upstream sees
 * and the TLS server name), and the address in its `origin` (where the gateway connects).
 */
import { isIP } from "node:net";
import type { Logger } from "../../observability/logger.ts";
import type { CompiledUpstream } from "../types.ts";
import { DnsWatch, type DiscoverySettings, type Endpoint } from "./discovery.ts";

/** What discovery needs to know of a declared target (and gives for each discovered one). */
export interface TargetTemplate {
  /** Identity in status pages and metrics, e.g. `http://10.0.0.5:8080/base`. */
  url: string;
  origin: string;
  basePath: string;
  host: string;
  weight: number;
  priority: number;
  serverName?: string | null;
}

/** True when a target's host is a name that discovery resolves (not an IP address). */
export function isDiscoverable(template: TargetTemplate): boolean {
  const hostname = new URL(template.origin).hostname.replace(/^\[|\]$/g, "");
  return isIP(hostname) === 0;
}

/** The target for one endpoint of a discovered template. */
export function endpointTarget(template: TargetTemplate, endpoint: Endpoint): TargetTemplate {
  const url = new URL(template.origin);
  const port = endpoint.port ?? (url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80);
  const host = endpoint.address.includes(":") ? `[${endpoint.address}]` : endpoint.address;
  const origin = `${url.protocol}//${host}:${port}`;
  // In srv mode host and port come from the SRV record, and so does the Host header.
  const hostHeader = endpoint.host === null ? template.host : `${endpoint.host}:${port}`;
  return {
    url: origin + template.basePath,
    origin,
    basePath: template.basePath,
    host: hostHeader,
    weight: endpoint.weight ?? template.weight,
    priority: template.priority,
    // Connected by address, an https target is verified against its name.
    serverName: url.protocol === "https:" ? (endpoint.host ?? url.hostname) : null,
  };
}

/** Watches the names of an upstream's targets and hands over each new target list. */
export class DiscoveredTargets {
  readonly #templates: readonly TargetTemplate[];
  readonly #found = new Map<TargetTemplate, Endpoint[]>();
  #watches: DnsWatch[] = [];
  #ready: Promise<void> | null = null;
  #settled = false;

  /**
   * `apply` receives the full target list (static targets and every address found so
   * far) each time it changes; it is not called before the first change.
   */
  constructor(
    templates: readonly TargetTemplate[],
    readonly settings: DiscoverySettings,
    readonly apply: (targets: TargetTemplate[]) => void,
  ) {
    this.#templates = templates;
  }

  /** The targets known now: static ones and the addresses found so far. */
  current(): TargetTemplate[] {
    const out: TargetTemplate[] = [];
    for (const template of this.#templates) {
      if (!isDiscoverable(template)) out.push(template);
      else for (const endpoint of this.#found.get(template) ?? []) out.push(endpointTarget(template, endpoint));
    }
    return out;
  }

  /**
   * Takes over what `previous` (the same upstream in the config generation before a
   * reload) found for the same names and settings, so that a reload neither waits for
   * DNS nor loses the addresses when DNS is down. Call before `start`.
   */
  seedFrom(previous: DiscoveredTargets): void {
    if (JSON.stringify(previous.settings) !== JSON.stringify(this.settings)) return;
    for (const template of this.#templates) {
      if (!isDiscoverable(template)) continue;
      const before = [...previous.#found.entries()].find(([old]) => old.origin === template.origin);
      if (before) this.#found.set(template, before[1]);
    }
    if (this.#found.size > 0) this.apply(this.current());
  }

  /** Starts the lookups (once); resolves when every first lookup is over. */
  start(log: Logger): Promise<void> {
    if (this.#ready) return this.#ready;
    // Names already known (seeded by a reload) need no wait for their first lookup.
    if (this.#templates.filter(isDiscoverable).every((template) => this.#found.has(template))) this.#settled = true;
    const names = this.#templates.filter(isDiscoverable);
    this.#watches = names.map((template) => {
      const name = new URL(template.origin).hostname;
      return new DnsWatch(name, this.settings, log.child({ upstream_target: template.url }), (endpoints) => {
        this.#found.set(template, endpoints);
        this.apply(this.current());
      });
    });
    this.#ready = Promise.all(this.#watches.map((watch) => watch.firstLookup)).then(() => {
      this.#settled = true;
    });
    return this.#ready;
  }

  /** While the first lookups run: a promise of their end; null before start and after. */
  get starting(): Promise<void> | null {
    return this.#settled ? null : this.#ready;
  }

  stop(): void {
    for (const watch of this.#watches) watch.stop();
    this.#watches = [];
  }
}

/**
 * Starts DNS discovery for every upstream of a config generation that has it (workers
 * and the supervisor call this; `turnpike validate` does not, so it queries no DNS).
 * `onChange` runs after an upstream's targets changed. With `quiet`, what discovery
 * logs goes to debug: every process looks names up, and the supervisor's lines suffice.
 */
export function startDiscovery(
  upstreams: ReadonlyMap<string, CompiledUpstream>,
  log: Logger,
  options: { quiet?: boolean; onChange?: () => void; previous?: ReadonlyMap<string, CompiledUpstream> } = {},
): void {
  const base = options.quiet ? debugOnly(log) : log;
  for (const upstream of upstreams.values()) {
    if (upstream.kind !== "http" || !upstream.discovery) continue;
    const before = options.previous?.get(upstream.name);
    if (before?.kind === "http" && before.discovery) upstream.discovery.seedFrom(before.discovery);
    if (options.onChange) upstream.onTargetsChange(options.onChange);
    void upstream.discovery.start(base.child({ upstream: upstream.name }));
  }
}

/** A logger that writes every line at debug level. */
function debugOnly(log: Logger): Logger {
  return {
    debug: (msg, fields) => log.debug(msg, fields),
    info: (msg, fields) => log.debug(msg, fields),
    warn: (msg, fields) => log.debug(msg, fields),
    error: (msg, fields) => log.debug(msg, fields),
    child: (fields) => debugOnly(log.child(fields)),
  };
}

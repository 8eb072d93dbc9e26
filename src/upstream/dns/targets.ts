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
  };
}

/** Watches the names of an upstream's targets and hands over each new target list. */
export class DiscoveredTargets {
  readonly #templates: readonly TargetTemplate[];
  readonly #found = new Map<TargetTemplate, Endpoint[]>();
  #watches: DnsWatch[] = [];
  #ready: Promise<void> | null = null;

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

  /** Starts the lookups (once); resolves when every first lookup is over. */
  start(log: Logger): Promise<void> {
    if (this.#ready) return this.#ready;
    const names = this.#templates.filter(isDiscoverable);
    this.#watches = names.map((template) => {
      const name = new URL(template.origin).hostname;
      return new DnsWatch(name, this.settings, log.child({ upstream_target: template.url }), (endpoints) => {
        this.#found.set(template, endpoints);
        this.apply(this.current());
      });
    });
    this.#ready = Promise.all(this.#watches.map((watch) => watch.firstLookup)).then(() => {});
    return this.#ready;
  }

  /** True until every first lookup is over. */
  get pending(): Promise<void> | null {
    return this.#ready;
  }

  stop(): void {
    for (const watch of this.#watches) watch.stop();
    this.#watches = [];
  }
}

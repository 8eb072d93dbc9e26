/** The registry of policy factories, keyed by type name. */
import type { PolicyFactory } from "./policy.ts";

/** A set of policy factories; a config may only name types registered here. */
export class PolicyRegistry {
  readonly #factories = new Map<string, PolicyFactory>();

  constructor(factories: readonly PolicyFactory[] = []) {
    for (const factory of factories) this.register(factory);
  }

  register(factory: PolicyFactory): void {
    if (this.#factories.has(factory.type)) throw new Error(`policy type "${factory.type}" registered twice`);
    this.#factories.set(factory.type, factory);
  }

  get(type: string): PolicyFactory | undefined {
    return this.#factories.get(type);
  }

  /** All factories, in registration order. */
  all(): PolicyFactory[] {
    return [...this.#factories.values()];
  }
}

/**
 * The `store.hazelcast` config section (cluster mode):
 *
 *     store:
 *       type: hazelcast
 *       hazelcast:
 *         members: ["127.0.0.1:5701"]   # host:port of one or more members
 *         cluster_name: turnpike          # as the members were started
 *         mode: strict                    # or batched (see docs/cluster.md)
 *         timeout: 1s                     # longest wait for one operation
 */
import type { ConfigPath } from "../config/source.ts";
import { durationSchema, parseDuration } from "../core/units.ts";
import type { Logger } from "../observability/logger.ts";
import { createHazelcastStore, type HazelcastMode } from "./hazelcast.ts";
import type { Store } from "./types.ts";

/** `store.hazelcast` as written. */
export interface HazelcastStoreConfig {
  members: string[];
  cluster_name?: string;
  mode?: HazelcastMode;
  timeout?: string | number;
}

/** `store.hazelcast` after compilation. */
export interface HazelcastStoreSettings {
  members: string[];
  clusterName: string;
  mode: HazelcastMode;
  timeoutMs: number;
}

export const hazelcastStoreSchema = {
  type: "object",
  additionalProperties: false,
  required: ["members"],
  description: "The Hazelcast store (cluster mode): every gateway pointed at the same cluster shares limits and quotas.",
  properties: {
    members: {
      type: "array",
      minItems: 1,
      items: { type: "string", minLength: 1, description: "A member address, host:port (e.g. 127.0.0.1:5701)." },
      description: "Addresses of Hazelcast members; the client finds the rest of the cluster from any of them.",
    },
    cluster_name: { type: "string", minLength: 1, description: "The members' cluster name; default turnpike." },
    mode: {
      enum: ["strict", "batched"],
      description: "strict (default): every count is exact through the cluster; batched: each process takes counts in blocks, never over a limit, at most 1% of it refused early.",
    },
    timeout: { ...durationSchema, description: "Longest wait for one cluster operation before the limit's fail mode applies; default 1s." },
  },
} as const;

const MEMBER = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/;

/** Compiles `store.hazelcast`; problems go to `fail` with their sub-path. */
export function compileHazelcastSettings(config: HazelcastStoreConfig | undefined, fail: (path: ConfigPath, message: string) => void): HazelcastStoreSettings {
  if (!config) fail([], "store type hazelcast needs a `hazelcast:` section with `members`");
  const members = config?.members ?? [];
  members.forEach((member, i) => {
    const match = MEMBER.exec(member);
    const port = match ? Number(match[2]) : 0;
    if (!match || port < 1 || port > 65535) fail(["members", i], `"${member}" is not a member address host:port (e.g. 127.0.0.1:5701)`);
  });
  const timeoutMs = parseDuration(config?.timeout ?? "1s");
  if (timeoutMs < 1) fail(["timeout"], "must be more than 0");
  return { members, clusterName: config?.cluster_name ?? "turnpike", mode: config?.mode ?? "strict", timeoutMs };
}

/** Creates the store of a process (it connects in the background). */
export function createHazelcastStoreFromSettings(settings: HazelcastStoreSettings, log: Logger): Store {
  return createHazelcastStore({
    members: settings.members,
    clusterName: settings.clusterName,
    mode: settings.mode,
    timeoutMs: settings.timeoutMs,
    log,
  });
}

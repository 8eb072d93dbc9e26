/**
 * Publish/subscribe between the worker processes of one node. A worker's messages go to
 * the supervisor over IPC, which sends them to every live worker (the publisher
 * included); each worker hands them to its local subscribers. A process without a
 * supervisor (unit tests) delivers to its own subscribers only.
 */
import type { Subscriber } from "../types.ts";

/** Sends a published message towards every process of the node. */
export type BusTransport = (channel: string, message: string) => void;

const subscribers = new Map<string, Set<Subscriber>>();
let transport: BusTransport | null = null;

/** Set by the worker at start: the IPC route to the supervisor. */
export function setBusTransport(send: BusTransport | null): void {
  transport = send;
}

/** Publishes to every process of the node (asynchronously, also to this process). */
export function publishOnBus(channel: string, message: string): void {
  if (transport) transport(channel, message);
  else queueMicrotask(() => deliverFromBus(channel, message));
}

/** Hands a message that reached this process to its local subscribers. */
export function deliverFromBus(channel: string, message: string): void {
  const set = subscribers.get(channel);
  if (!set) return;
  for (const subscriber of [...set]) {
    try {
      subscriber(message);
    } catch {
      // One subscriber's failure does not stop the others.
    }
  }
}

/** Adds a local subscriber; returns the function that removes it. */
export function subscribeOnBus(channel: string, subscriber: Subscriber): () => void {
  let set = subscribers.get(channel);
  if (!set) subscribers.set(channel, (set = new Set()));
  set.add(subscriber);
  return () => {
    set.delete(subscriber);
    if (set.size === 0 && subscribers.get(channel) === set) subscribers.delete(channel);
  };
}

/**
 * The policy pipeline. For one request:
 *
 * 1. request phase: `pre_flow` policies in order, then the route's policies in order;
 *    a policy whose `when` is false is skipped; one that returns a Response stops the
 *    phase (later policies and the upstream are not called);
 * 2. the proxy (the upstream call or the mock), unless a policy answered;
 * 3. response phase, on whichever response there is: the route's policies in reverse
 *    order, then `pre_flow` policies in reverse order (only those whose request hook
 *    ran or was skipped for lack of one, never those after the one that answered),
 *    then `post_flow` policies in order;
 * 4. completion: `onComplete` of every policy that took part, after the response is
 *    handed over; errors there are swallowed.
 */
import type { Exchange } from "./exchange.ts";
import type { Policy } from "./policy.ts";

/** A policy with its compiled `when` condition. */
export interface Step {
  policy: Policy;
  when: ((exchange: Exchange) => boolean) | null;
}

/** The call at the centre of the pipeline: forwards upstream or answers a mock. */
export type Proxy = (exchange: Exchange) => Promise<Response>;

/**
 * Runs the request phase, the proxy and the response phase. `participants` receives
 * every policy that took part so the caller can run completion hooks.
 */
export async function runPipeline(
  exchange: Exchange,
  preFlow: readonly Step[],
  routeSteps: readonly Step[],
  postFlow: readonly Step[],
  proxy: Proxy,
  participants: Policy[],
): Promise<Response> {
  let response: Response | undefined;
  // Steps whose response hook must run, in the order their request hook ran.
  const ran: Step[] = [];
  // An empty phase is skipped outright: each phase run costs a promise and a microtask.
  if (preFlow.length > 0) response = await requestPhase(exchange, preFlow, ran, participants);
  if (!response && routeSteps.length > 0) response = await requestPhase(exchange, routeSteps, ran, participants);
  if (!response) response = await proxy(exchange);
  for (let i = ran.length - 1; i >= 0; i--) {
    // A hook that answers synchronously is not awaited: no microtask per policy.
    const next = ran[i]!.policy.onResponse!(exchange, response);
    response = next instanceof Promise ? await next : next;
  }
  for (const step of postFlow) {
    if (step.when && !step.when(exchange)) continue;
    if (step.policy.onComplete) participants.push(step.policy);
    if (step.policy.onResponse) response = await step.policy.onResponse(exchange, response);
  }
  return response;
}

async function requestPhase(
  exchange: Exchange,
  steps: readonly Step[],
  ran: Step[],
  participants: Policy[],
): Promise<Response | undefined> {
  for (const step of steps) {
    if (step.when && !step.when(exchange)) continue;
    const policy = step.policy;
    if (policy.onComplete) participants.push(policy);
    if (policy.onRequest) {
      const pending = policy.onRequest(exchange);
      const outcome = pending instanceof Promise ? await pending : pending;
      if (policy.onResponse) ran.push(step);
      if (outcome) {
        exchange.answeredBy = policy;
        recordAnswer(exchange, policy.type);
        return outcome;
      }
    } else if (policy.onResponse) {
      ran.push(step);
    }
  }
  return undefined;
}

/** Records that a policy answered, unless it recorded a decision of its own. */
function recordAnswer(exchange: Exchange, type: string): void {
  const decisions = exchange.decisions;
  if (!decisions) {
    exchange.decisions = [`${type}:answered`];
    return;
  }
  const prefix = `${type}:`;
  for (const decision of decisions) if (decision.startsWith(prefix)) return;
  decisions.push(`${type}:answered`);
}

/** Records a policy decision for the access log (see `Exchange.decisions`). */
export function recordDecision(exchange: Exchange, type: string, decision: string): void {
  const text = `${type}:${decision}`;
  if (exchange.decisions) exchange.decisions.push(text);
  else exchange.decisions = [text];
}

/**
 * Runs completion hooks; a failing hook is reported through `onError`, never thrown.
 * A hook written as `async` that rejects is reported the same way, not left unhandled.
 */
export function runCompletion(
  exchange: Exchange,
  response: Response,
  participants: readonly Policy[],
  onError: (error: unknown, policy: Policy, exchange: Exchange) => void,
): void {
  for (const policy of participants) {
    try {
      const result: unknown = policy.onComplete!(exchange, response);
      if (result instanceof Promise) result.catch((error: unknown) => onError(error, policy, exchange));
    } catch (error) {
      onError(error, policy, exchange);
    }
  }
}

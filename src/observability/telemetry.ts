/**
 * Telemetry of a worker: the parts that watch every request (metrics, access log,
 * tracing). The handler calls `start` once an exchange exists and `end` for every
 * request it answers, including those refused before routing. Parts live as long as
 * the worker; `configure` hands them each new config generation.
 */
import type { RuntimeGraph } from "../config/graph.ts";
import type { Exchange } from "../core/exchange.ts";
import type { Logger } from "./logger.ts";

/** One finished request as the handler saw it. */
export interface RequestOutcome {
  request: Request;
  /** Null when the request was refused before routing (400, 414, 431). */
  exchange: Exchange | null;
  requestId: string;
  /** The real client address (the socket peer, or the client named by a trusted proxy). */
  clientIp: string;
  response: Response;
  /** `performance.now()` when the handler got the request. */
  startedAt: number;
}

/** One part of the telemetry; every hook must be cheap and must never throw. */
export interface TelemetryPart {
  readonly name: string;
  /** A new config generation (also the first one). */
  configure(graph: RuntimeGraph): void;
  /** The exchange is built, before any policy runs (e.g. to read or start a trace). */
  start?(exchange: Exchange): void;
  /** The response is ready to be handed to the client. */
  end?(outcome: RequestOutcome): void;
  /** The worker drains: flush what is buffered. */
  close?(): Promise<void> | void;
}

/** The telemetry parts of one worker, called in order. */
export class WorkerTelemetry {
  readonly #starts: TelemetryPart[];
  readonly #ends: TelemetryPart[];

  constructor(readonly parts: readonly TelemetryPart[], readonly log: Logger) {
    this.#starts = parts.filter((part) => part.start);
    this.#ends = parts.filter((part) => part.end);
  }

  configure(graph: RuntimeGraph): void {
    for (const part of this.parts) {
      try {
        part.configure(graph);
      } catch (error) {
        this.log.error("telemetry part failed to take the new config", { part: part.name, error });
      }
    }
  }

  start(exchange: Exchange): void {
    for (const part of this.#starts) {
      try {
        part.start!(exchange);
      } catch (error) {
        this.log.error("telemetry start hook failed", { part: part.name, request_id: exchange.requestId, error });
      }
    }
  }

  end(outcome: RequestOutcome): void {
    for (const part of this.#ends) {
      try {
        part.end!(outcome);
      } catch (error) {
        this.log.error("telemetry end hook failed", { part: part.name, request_id: outcome.requestId, error });
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.parts.map(async (part) => part.close?.()));
  }
}

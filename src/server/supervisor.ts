/**
 * The supervisor: validates the config, starts N worker processes (each a copy of
 * this executable), replaces workers that die, reloads on SIGHUP or file change,
 * drains on SIGTERM, and serves the admin API.
 *
 * Reload: the new config is loaded and compiled here first; a failure keeps the old
 * config serving. When only routes, upstreams or policies change, the text is sent to
 * every worker, which swaps its graph in place (no connection is touched). When
 * listeners or certificate files change, a new generation of workers starts beside the
 * old one (reusePort lets both listen), and once all are ready the old ones drain.
 */
import { readFileSync, watch, type FSWatcher } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import type { Server, Subprocess } from "bun";
import { startAdmin } from "../admin/server.ts";
import { ConfigLoader, type LoadedConfig } from "../config/load.ts";
import { formatError } from "../config/source.ts";
import { AuditLog, configHash, type AuditActor } from "../observability/audit-log.ts";
import type { ErrorLogOutput } from "../observability/error-log.ts";
import type { Logger } from "../observability/logger.ts";
import { readMetricsConfig } from "../observability/metrics/config.ts";
import { NodeMetrics, SCRAPE_TIMEOUT_MS } from "../observability/metrics/node-metrics.ts";
import { createNodeMemory, type NodeMemory } from "../shared/index.ts";
import { setUpstreamEventSink } from "../upstream/events.ts";
import type { RuntimeGraph } from "../config/graph.ts";
import { startDiscovery } from "../upstream/dns/targets.ts";
import { ActiveHealthChecks } from "../upstream/health-check.ts";
import { ClusterHealth } from "../upstream/cluster-health.ts";
import { processStores } from "../store/index.ts";
import { upstreamEventLogger, upstreamsStatus } from "../upstream/status.ts";
import { restoreDurableCounters } from "../store/embedded/state-file.ts";
import { VERSION } from "../version.ts";
import type { FromWorker, StoreStatus, ToWorker } from "./messages.ts";
import { unavailableListeners } from "./port-check.ts";

/** How long new workers may take to report ready before a start or reload fails. */
const READY_TIMEOUT_MS = 15_000;
/** A worker that dies sooner than this after starting counts as crash-looping. */
const CRASH_WINDOW_MS = 2_000;
/**
 * A worker retired while others serve keeps its listeners open this long, answering with
 * `Connection: close`, so that its keep-alive clients move to other workers between two
 * requests instead of finding their connection closed under them.
 */
const HANDOFF_MS = 500;
/** Edits of a watched config file are collected for this long before one reload. */
const WATCH_DEBOUNCE_MS = 200;

interface WorkerHandle {
  process: Subprocess<"ignore", "inherit", "inherit">;
  slot: number;
  /** The config generation this worker was (or will be) told to serve. */
  generation: number;
  /** The generation the worker last confirmed (ready or reloaded); 0 before that. */
  serving: number;
  /** The worker said hello and was sent a config. */
  configured: boolean;
  startedAt: number;
  ready: boolean;
  retiring: boolean;
  waiters: ((message: FromWorker) => void)[];
}

/** The outcome of a reload, as the admin API returns it. */
export interface ReloadResult {
  ok: boolean;
  errors: string[];
  generation: number;
}

/** Supervisor options from the command line. */
export interface SupervisorOptions {
  file: string;
  workers: number | null;
  log: Logger;
  /** The destination of `log`, pointed where each config's `observability.error_log` says. */
  errorLog?: ErrorLogOutput;
}

/** Starts the gateway; resolves once every worker serves, exits the process if the start fails. */
export async function runSupervisor(options: SupervisorOptions): Promise<void> {
  const supervisor = new Supervisor(options);
  await supervisor.start();
}

class Supervisor {
  readonly #file: string;
  readonly #log: Logger;
  readonly #loader = new ConfigLoader();
  readonly #requestedWorkers: number | null;
  readonly #startedAt = Date.now();
  #loaded!: LoadedConfig;
  #text = "";
  #generation = 0;
  /** The workers of the current generation, by slot. */
  #workers: WorkerHandle[] = [];
  /** Every worker process that has not exited yet (current, starting and draining). */
  readonly #live = new Set<WorkerHandle>();
  #admin: Server<unknown> | null = null;
  #watcher: FSWatcher | null = null;
  /** Set once the first generation serves; reloads wait for it. */
  #started = false;
  #stopping = false;
  #reloading: Promise<ReloadResult> | null = null;
  /** A reload asked for while one runs: it runs after, so it reads the newest file. */
  #queuedReload: Promise<ReloadResult> | null = null;
  /** A rolling restart's generation and text, handed to its workers when they say hello. */
  #pending: { generation: number; text: string } | null = null;
  #restarts = 0;
  #recentCrashes = 0;
  readonly #audit = new AuditLog();
  readonly #errorLog: ErrorLogOutput | null;
  /** Who asked for the queued reload (several callers may share it). */
  #queuedActors: AuditActor[] = [];
  /** The text the last read of the config file returned (null: unreadable), for the audit hash. */
  #lastRead: string | null = null;
  /** Worker snapshots, retired totals and the supervisor's own metrics. */
  readonly #metrics = new NodeMetrics();
  #scrapeId = 0;
  /** Active health checks: probed here, once per node; the verdicts reach workers through shared memory. */
  readonly #healthChecks = new ActiveHealthChecks(
    (target, down, reason, intervalMs) => this.#clusterHealth.local(target, down, reason, intervalMs),
    (target) => this.#clusterHealth.source(target.upstream, target.url).health_source === "remote",
  );
  /** Active health verdicts shared with the other nodes (`health_check.share: cluster`). */
  readonly #clusterHealth = new ClusterHealth((message, fields) => this.#log.warn(message, fields));
  /** Node-wide shared memory, mapped by every worker (created before the first one starts). */
  #memory: NodeMemory | null = null;

  constructor(options: SupervisorOptions) {
    this.#file = resolve(options.file);
    this.#log = options.log;
    this.#requestedWorkers = options.workers;
    this.#errorLog = options.errorLog ?? null;
    setUpstreamEventSink(upstreamEventLogger(this.#log));
  }

  #workerCountFor(loaded: LoadedConfig): number {
    return this.#requestedWorkers ?? loaded.graph.workers ?? navigator.hardwareConcurrency ?? 1;
  }

  async start(): Promise<void> {
    const first = this.#load();
    if (!first.ok) {
      for (const line of first.errors) console.error(line);
      console.error(`${first.errors.length} error(s); nothing started.`);
      process.exit(1);
    }
    this.#loaded = first.loaded;
    this.#text = first.text;
    this.#generation = 1;
    this.#configureLogs();

    process.on("SIGHUP", () => void this.reload("SIGHUP", { type: "signal", signal: "SIGHUP" }));
    process.on("SIGUSR1", () => this.#reopenLogs());
    process.on("SIGTERM", () => void this.shutdown("SIGTERM"));
    process.on("SIGINT", () => void this.shutdown("SIGINT"));

    const graph = this.#loaded.graph;
    const taken = unavailableListeners(graph.listeners, []).map((e) => `${this.#file}: ${e}`);
    if (taken.length > 0) {
      for (const line of taken) console.error(line);
      console.error(`${taken.length} error(s); nothing started.`);
      process.exit(1);
    }
    const store = graph.store;
    try {
      this.#memory = createNodeMemory(store.embedded.memorySlots);
    } catch (error) {
      console.error(`cannot create the node's shared memory: ${(error as Error).message}`);
      process.exit(1);
    }
    if (store.type === "embedded") {
      // Quotas and other durable counters continue where the last run left them.
      try {
        const restored = restoreDurableCounters(store.embedded.stateDir, this.#memory.table);
        if (restored > 0) this.#log.info("durable counters restored", { state_dir: store.embedded.stateDir, counters: restored });
      } catch (error) {
        this.#log.error("cannot read the state file; durable counters start from zero", { state_dir: store.embedded.stateDir, error });
      }
    }
    // Removed however the supervisor ends (shutdown, failed start); workers that still run keep their mapping.
    process.on("exit", () => this.#memory?.remove());
    // The first config was compiled before the shared memory existed (its size comes from
    // the config): compile it again, so that its upstreams read their node-wide state there.
    const bound = this.#load();
    if (bound.ok) {
      this.#loaded.graph.dispose();
      this.#loaded = bound.loaded;
      this.#text = bound.text;
    }
    if (this.#loaded.graph.admin.enabled) {
      try {
        this.#admin = startAdmin(graph.admin.address, graph.admin.port, this.#adminSource());
      } catch (error) {
        console.error(`cannot start the admin listener on ${graph.admin.address}:${graph.admin.port}: ${(error as Error).message}`);
        process.exit(1);
      }
    }

    const started = await this.#startGeneration(this.#generation, this.#workerCountFor(this.#loaded));
    if (this.#stopping) return;
    if (!started.ok) {
      for (const line of started.errors) console.error(line);
      await this.#kill(started.workers);
      process.exit(1);
    }
    this.#workers = started.workers;
    this.#started = true;
    this.#shareHealth(this.#loaded.graph);
    this.#healthChecks.apply(this.#loaded.graph.upstreams);
    this.#startDiscovery();
    if (graph.watch) this.#watch();
    this.#log.info("turnpike ready", {
      version: VERSION,
      workers: this.#workers.length,
      generation: this.#generation,
      listeners: graph.listeners.map((l) => `${l.scheme}://${l.address}:${l.port}`),
      admin: this.#admin ? `http://${graph.admin.address}:${this.#admin.port}` : null,
    });
  }

  #load(): { ok: true; loaded: LoadedConfig; text: string } | { ok: false; errors: string[] } {
    let text: string;
    this.#lastRead = null;
    try {
      text = readFileSync(this.#file, "utf8");
      this.#lastRead = text;
    } catch (error) {
      return { ok: false, errors: [`${this.#file}: cannot read config file: ${(error as NodeJS.ErrnoException).code ?? error}`] };
    }
    const result = this.#loader.loadText(text, this.#file);
    if (!result.ok) return { ok: false, errors: result.errors.map((e) => formatError(this.#file, e)) };
    return { ok: true, loaded: result.loaded, text };
  }

  #spawn(slot: number, generation: number): WorkerHandle {
    const command = Bun.main.startsWith("/$bunfs/") ? [process.execPath] : [process.execPath, Bun.main];
    const handle: WorkerHandle = {
      process: undefined as never,
      slot,
      generation,
      serving: 0,
      configured: false,
      startedAt: performance.now(),
      ready: false,
      retiring: false,
      waiters: [],
    };
    handle.process = Bun.spawn({
      cmd: command,
      env: { ...process.env, TURNPIKE_ROLE: "worker" },
      stdio: ["ignore", "inherit", "inherit"],
      serialization: "json",
      ipc: (message: FromWorker) => this.#onMessage(handle, message),
      onExit: (_proc, exitCode, signalCode) => this.#onExit(handle, exitCode, signalCode === null ? null : String(signalCode)),
    });
    this.#live.add(handle);
    return handle;
  }

  #send(handle: WorkerHandle, message: ToWorker): void {
    try {
      handle.process.send(message);
    } catch (error) {
      this.#log.warn("cannot reach worker", { pid: handle.process.pid, error });
    }
  }

  /** Tells a worker which config to serve: its rolling generation's, else the current one. */
  #configure(handle: WorkerHandle): void {
    const pending = this.#pending;
    const text = pending && handle.generation === pending.generation ? pending.text : this.#text;
    if (!(pending && handle.generation === pending.generation)) handle.generation = this.#generation;
    handle.configured = true;
    this.#send(handle, { type: "config", generation: handle.generation, file: this.#file, text });
  }

  #onMessage(handle: WorkerHandle, message: FromWorker): void {
    if (message.type === "metrics") this.#metrics.workerReported(handle.process.pid, message.snapshot);
    if (message.type === "publish") {
      for (const worker of this.#live) this.#send(worker, { type: "published", channel: message.channel, message: message.message });
      return;
    }
    if (message.type === "hello") {
      // A worker that was spawned while a shutdown began may have missed its drain message.
      if (this.#stopping || handle.retiring) this.#send(handle, { type: "drain" });
      else this.#configure(handle);
      return;
    }
    if (message.type === "ready" || message.type === "reloaded") {
      handle.serving = Math.max(handle.serving, message.generation);
      if (message.type === "ready") handle.ready = true;
    }
    const waiters = handle.waiters;
    handle.waiters = [];
    for (const waiter of waiters) waiter(message);
  }

  #onExit(handle: WorkerHandle, exitCode: number | null, signalCode: string | null): void {
    this.#live.delete(handle);
    this.#releaseInFlight(handle.process.pid);
    // Requests the worker still had in flight are gone: give their node-wide slots back.
    for (const limiter of this.#loaded.graph.concurrencyLimiters) limiter.slots.reclaim?.(handle.process.pid);
    this.#metrics.workerExited(handle.process.pid);
    const cause = signalCode ? `killed by ${signalCode}` : `exit code ${exitCode}`;
    for (const waiter of handle.waiters) waiter({ type: "failed", generation: handle.generation, errors: [`worker ${handle.process.pid} exited (${cause})`] });
    handle.waiters = [];
    if (handle.retiring || this.#stopping) {
      this.#log.debug("worker exited", { pid: handle.process.pid, cause, retiring: handle.retiring });
      return;
    }
    const index = this.#workers.indexOf(handle);
    if (index < 0) return;
    const lived = performance.now() - handle.startedAt;
    this.#recentCrashes = lived < CRASH_WINDOW_MS ? this.#recentCrashes + 1 : 0;
    this.#restarts++;
    // A crash loop backs off, but never past one second.
    const delay = Math.min(1000, this.#recentCrashes > 1 ? 100 * 2 ** (this.#recentCrashes - 2) : 0);
    this.#log.warn("worker exited; starting a replacement", {
      pid: handle.process.pid,
      cause,
      exit_code: exitCode,
      signal: signalCode,
      lived_ms: Math.round(lived),
      restart_in_ms: delay,
    });
    this.#respawnLater(handle, index, delay);
  }

  /** Requests a worker that exited still counted in flight to upstream targets are taken out of the node-wide counts. */
  #releaseInFlight(pid: number): void {
    let released = 0;
    for (const upstream of this.#loaded.graph.upstreams.values()) {
      if (upstream.kind === "http") released += upstream.releaseInFlightOf(pid);
    }
    if (released !== 0) this.#log.warn("a worker exited with upstream requests in flight; their counts were released", { pid, requests: released });
  }

  /** Starts a replacement for the dead worker in `index` after `delay` ms; retries if spawning fails. */
  #respawnLater(dead: WorkerHandle, index: number, delay: number): void {
    setTimeout(() => {
      if (this.#stopping || this.#workers[index] !== dead) return;
      try {
        this.#workers[index] = this.#spawn(dead.slot, this.#generation);
      } catch (error) {
        this.#log.error("cannot start a worker process; trying again in 1 s", { error });
        this.#respawnLater(dead, index, 1000);
      }
    }, delay);
  }

  /** Waits for the next message of a worker that satisfies `accept` (or says it failed). */
  #await(handle: WorkerHandle, accept: (m: FromWorker) => boolean, timeoutMs: number): Promise<FromWorker> {
    return new Promise((resolvePromise) => {
      const timer = setTimeout(() => {
        handle.waiters = handle.waiters.filter((w) => w !== listen);
        resolvePromise({ type: "failed", generation: handle.generation, errors: [`worker ${handle.process.pid} did not answer within ${timeoutMs} ms`] });
      }, timeoutMs);
      const listen = (message: FromWorker) => {
        if (accept(message) || message.type === "failed") {
          clearTimeout(timer);
          resolvePromise(message);
        } else {
          handle.waiters.push(listen);
        }
      };
      handle.waiters.push(listen);
    });
  }

  async #startGeneration(generation: number, count: number): Promise<{ ok: boolean; workers: WorkerHandle[]; errors: string[] }> {
    const workers = Array.from({ length: count }, (_, slot) => this.#spawn(slot, generation));
    const answers = await Promise.all(workers.map((w) => this.#await(w, (m) => m.type === "ready", READY_TIMEOUT_MS)));
    const errors = answers.flatMap((a) => (a.type === "failed" ? a.errors : []));
    return { ok: errors.length === 0, workers, errors: [...new Set(errors)] };
  }

  async #kill(workers: WorkerHandle[]): Promise<void> {
    for (const worker of workers) {
      worker.retiring = true;
      worker.process.kill("SIGKILL");
    }
    await Promise.all(workers.map((w) => w.process.exited));
  }

  /**
   * Stops a worker gracefully: it stops accepting, finishes its requests and exits. One
   * that is still alive well after its grace is killed. Resolves once its listeners are
   * closed (or it is gone), so that a caller knows new connections only reach the others.
   */
  #retire(worker: WorkerHandle, handoffMs = HANDOFF_MS): Promise<void> {
    worker.retiring = true;
    if (!this.#live.has(worker)) return Promise.resolve();
    this.#warnIfQueuedConnectionsAreLost();
    const closed = this.#await(worker, (m) => m.type === "closed", handoffMs + 2_000).then(() => undefined);
    this.#send(worker, { type: "drain", handoffMs });
    const limit = this.#loaded.graph.drainTimeoutMs + handoffMs + 5_000;
    const timer = setTimeout(() => {
      if (!this.#live.has(worker)) return;
      this.#log.warn("a draining worker did not exit in time; killing it", { pid: worker.process.pid, waited_ms: limit });
      worker.process.kill("SIGKILL");
    }, limit);
    void worker.process.exited.then(() => clearTimeout(timer));
    return closed;
  }

  /**
   * Reloads the config file. A reload asked for while another runs is queued behind it
   * (the running one may have read the file before the latest edit); several queued
   * requests share one reload.
   */
  reload(reason: string, actor: AuditActor = actorFor(reason, this.#file), alsoRequestedBy: AuditActor[] = []): Promise<ReloadResult> {
    if (this.#stopping) return Promise.resolve(this.#audited({ ok: false, errors: ["shutting down"], generation: this.#generation }, actor, alsoRequestedBy));
    if (!this.#started) {
      this.#log.warn("reload ignored: the gateway is still starting", { reason });
      return Promise.resolve(this.#audited({ ok: false, errors: ["still starting; try again"], generation: this.#generation }, actor, alsoRequestedBy));
    }
    if (this.#reloading) {
      this.#queuedActors.push(actor, ...alsoRequestedBy);
      this.#queuedReload ??= this.#reloading.then(() => {
        this.#queuedReload = null;
        const [first, ...others] = this.#queuedActors;
        this.#queuedActors = [];
        return this.reload(reason, first, others);
      });
      return this.#queuedReload;
    }
    const oldGeneration = this.#generation;
    const oldText = this.#text;
    this.#reloading = this.#reload(reason).then((result) => {
      this.#metrics.reloaded(result.ok);
      return this.#audited(result, actor, alsoRequestedBy, oldGeneration, oldText, result.ok ? this.#text : this.#lastRead);
    }).finally(() => {
      this.#reloading = null;
    });
    return this.#reloading;
  }

  async #reload(reason: string): Promise<ReloadResult> {
    const next = this.#load();
    if (!next.ok) {
      this.#log.error("reload failed; the current config keeps serving", { reason, generation: this.#generation, errors: next.errors });
      return { ok: false, errors: next.errors, generation: this.#generation };
    }
    const generation = this.#generation + 1;
    const inPlace = next.loaded.graph.listenerFingerprint === this.#loaded.graph.listenerFingerprint;
    const previous = this.#loaded;
    if (inPlace) {
      // Commit first: a worker that says hello from now on (a replacement) gets the new
      // text; every worker already configured is sent it now.
      this.#commit(next, generation);
      const targets = this.#workers.filter((w) => w.configured);
      const answers = await Promise.all(
        targets.map((worker) => {
          const answer = this.#await(worker, (m) => (m.type === "reloaded" || m.type === "ready") && m.generation === generation, READY_TIMEOUT_MS);
          worker.generation = generation;
          this.#send(worker, { type: "config", generation, file: this.#file, text: next.text });
          return answer;
        }),
      );
      if (this.#stopping) return { ok: false, errors: ["shutting down"], generation };
      const failed = targets.filter((_, i) => answers[i]!.type === "failed");
      if (failed.length > 0) {
        // A worker that did not take the config would serve the old one: replace it.
        const errors = [...new Set(answers.flatMap((a) => (a.type === "failed" ? a.errors : [])))];
        this.#log.error("some workers did not take the new config; replacing them", { reason, errors, pids: failed.map((w) => w.process.pid) });
        for (const worker of failed) this.#replace(worker);
      }
      this.#resize(this.#workerCountFor(next.loaded));
    } else {
      const taken = unavailableListeners(next.loaded.graph.listeners, previous.graph.listeners).map((e) => `${this.#file}: ${e}`);
      if (taken.length > 0) {
        this.#log.error("reload failed; the current config keeps serving", { reason, generation: this.#generation, errors: taken });
        next.loaded.graph.dispose();
        return { ok: false, errors: taken, generation: this.#generation };
      }
      this.#pending = { generation, text: next.text };
      const started = await this.#startGeneration(generation, this.#workerCountFor(next.loaded));
      this.#pending = null;
      if (this.#stopping) return { ok: false, errors: ["shutting down"], generation: this.#generation };
      if (!started.ok) {
        // Those that did start may already hold connections: drain them at once, do not kill them.
        for (const worker of started.workers) void this.#retire(worker, 0);
        this.#log.error("reload failed: new workers did not start; the current config keeps serving", { reason, errors: started.errors });
        next.loaded.graph.dispose();
        return { ok: false, errors: started.errors, generation: this.#generation };
      }
      const old = this.#workers;
      this.#workers = started.workers;
      this.#commit(next, generation);
      // Reported done once only the new workers accept connections.
      await Promise.all(old.map((worker) => this.#retire(worker)));
    }
    previous.graph.dispose();
    this.#log.info("config reloaded", { reason, generation, mode: inPlace ? "in place" : "rolling restart" });
    return { ok: true, errors: [], generation };
  }

  #warnedAboutMigration = false;

  /**
   * When a reusePort listener closes, Linux resets the connections still queued on it
   * unless `net.ipv4.tcp_migrate_req` is 1 (Linux 5.14+), which moves them to a listener
   * that stays. Said once, when a worker is first retired while others serve.
   */
  #warnIfQueuedConnectionsAreLost(): void {
    if (this.#warnedAboutMigration) return;
    this.#warnedAboutMigration = true;
    let value = "";
    try {
      value = readFileSync("/proc/sys/net/ipv4/tcp_migrate_req", "utf8").trim();
    } catch {
      return; // not Linux, or a kernel without the setting
    }
    if (value === "0") {
      this.#log.warn("retired workers close their listeners: connections still queued on them are reset; set the sysctl net.ipv4.tcp_migrate_req=1 to hand them to the workers that stay");
    }
  }

  #commit(next: { loaded: LoadedConfig; text: string }, generation: number): void {
    const previous = this.#loaded.graph;
    this.#loaded = next.loaded;
    this.#text = next.text;
    this.#generation = generation;
    this.#configureLogs();
    this.#shareHealth(next.loaded.graph);
    this.#healthChecks.apply(next.loaded.graph.upstreams);
    this.#startDiscovery(previous);
  }

  /** Joins (or leaves) the cluster's health channel: only when an upstream shares health and the store is Hazelcast. */
  #shareHealth(graph: RuntimeGraph): void {
    const sharing = graph.store.type === "hazelcast" && [...graph.upstreams.values()].some((u) => u.kind === "http" && u.shareHealth);
    const store = sharing ? processStores.get(graph.store) : null;
    if (store) processStores.retainOnly(graph.store, 30_000);
    this.#clusterHealth.apply(graph.upstreams, store);
  }

  /**
   * DNS discovery of the current graph's upstreams, here for GET /upstreams and the
   * health checks (which follow the targets it finds). The supervisor logs what it finds;
   * workers look names up too, quietly.
   */
  #startDiscovery(previous?: RuntimeGraph): void {
    startDiscovery(this.#loaded.graph.upstreams, this.#log, { previous: previous?.upstreams });
  }

  /** Writes the audit record of a reload (to the audit log of the config in force after it). */
  #audited(result: ReloadResult, who: AuditActor, others: AuditActor[], oldGeneration = this.#generation, oldText = this.#text, newText: string | null = null): ReloadResult {
    this.#audit.record({
      action: "reload",
      who,
      ...(others.length > 0 ? { also_requested_by: others } : {}),
      result: result.ok ? "ok" : "failed",
      ...(result.ok ? {} : { errors: result.errors }),
      old_generation: oldGeneration,
      new_generation: this.#generation,
      old_config_sha256: configHash(oldText),
      new_config_sha256: configHash(newText),
    });
    return result;
  }

  /** Points the supervisor's error log and audit log where the current config says. */
  #configureLogs(): void {
    const observability = this.#loaded.graph.observability;
    this.#audit.configure(observability.audit_log);
    this.#errorLog?.configure(observability.error_log);
  }

  /**
   * SIGUSR1: log rotation. Workers reopen their access log files; the supervisor's own
   * logs open their file for every line and need nothing.
   */
  #reopenLogs(): void {
    const workers = [...this.#live];
    this.#log.info("SIGUSR1: workers reopen their log files", { workers: workers.length });
    for (const worker of workers) {
      try {
        worker.process.kill("SIGUSR1");
      } catch (error) {
        this.#log.warn("cannot signal worker", { pid: worker.process.pid, error });
      }
    }
  }

  /** Starts a fresh worker in `worker`'s slot and drains the old one. */
  #replace(worker: WorkerHandle): void {
    const index = this.#workers.indexOf(worker);
    if (index < 0) return;
    this.#workers[index] = this.#spawn(worker.slot, this.#generation);
    void this.#retire(worker);
  }

  /** Applies a changed worker count of an in-place reload. */
  #resize(count: number): void {
    while (this.#workers.length < count) this.#workers.push(this.#spawn(this.#workers.length, this.#generation));
    while (this.#workers.length > count) void this.#retire(this.#workers.pop()!);
  }

  /**
   * Watches the config file's folder, not the file: editors that save by writing a new
   * file and renaming it over the old one would end a watch on the file itself.
   */
  #watch(): void {
    let timer: ReturnType<typeof setTimeout> | null = null;
    const name = basename(this.#file);
    try {
      this.#watcher = watch(dirname(this.#file), (_event, changed) => {
        if (changed !== null && changed !== name) return;
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => {
          timer = null;
          let text: string | null = null;
          try {
            text = readFileSync(this.#file, "utf8");
          } catch {
            // A missing file is the reload's to report.
          }
          if (text !== null && text === this.#text) return;
          void this.reload("config file changed", { type: "file_watch", file: this.#file });
        }, WATCH_DEBOUNCE_MS);
      });
    } catch (error) {
      this.#log.warn("cannot watch the config file; use SIGHUP to reload", { error });
    }
  }

  async shutdown(reason: string): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#watcher?.close();
    const everyone = [...this.#live];
    this.#log.info("shutting down: draining workers", { reason, workers: everyone.length });
    for (const worker of everyone) this.#send(worker, { type: "drain" });
    const grace = this.#loaded.graph.drainTimeoutMs + 5_000;
    const timeout = Bun.sleep(grace).then(() => "timeout" as const);
    const result = await Promise.race([Promise.all(everyone.map((w) => w.process.exited)), timeout]);
    if (result === "timeout") {
      this.#log.warn("workers did not exit in time; killing them", { pids: [...this.#live].map((w) => w.process.pid) });
      for (const worker of this.#live) worker.process.kill("SIGKILL");
    }
    this.#healthChecks.stop();
    this.#clusterHealth.stop();
    this.#admin?.stop(true);
    this.#log.info("stopped", { reason });
    process.exit(0);
  }

  /**
   * Asks every live worker for its metrics (each may take up to SCRAPE_TIMEOUT_MS) and
   * renders the node's exposition; null when metrics are disabled. Never fails: a worker
   * that does not answer is counted from its last snapshot.
   */
  /**
   * The store as the node sees it: available only when every serving worker that answers
   * says so (each worker holds its own connection), so one cut-off worker shows.
   */
  async #storeStatus(): Promise<StoreStatus> {
    const type = this.#loaded.graph.store.type;
    const id = ++this.#scrapeId;
    const serving = this.#workers.filter((w) => w.ready && this.#live.has(w));
    const answers = await Promise.all(
      serving.map((worker) => {
        const answer = this.#await(worker, (m) => m.type === "store" && m.id === id, SCRAPE_TIMEOUT_MS);
        this.#send(worker, { type: "store", id });
        return answer;
      }),
    );
    const reports = answers.flatMap((a) => (a.type === "store" ? [a.store] : []));
    return { type, available: reports.length > 0 && reports.every((r) => r.available && r.type === type) };
  }

  async #scrapeMetrics(): Promise<string | null> {
    if (!readMetricsConfig(this.#loaded.graph.observability).enabled) return null;
    const store = this.#storeStatus();
    const id = ++this.#scrapeId;
    const asked = [...this.#live];
    const answers = await Promise.all(
      asked.map((worker) => {
        const answer = this.#await(worker, (m) => m.type === "metrics" && m.id === id, SCRAPE_TIMEOUT_MS);
        this.#send(worker, { type: "metrics", id });
        return answer;
      }),
    );
    // Only workers still alive now: one that exited meanwhile is in the retired totals.
    const answered = new Set(asked.filter((w, i) => answers[i]!.type === "metrics" && this.#live.has(w)).map((w) => w.process.pid));
    return this.#metrics.render({
      live: [...this.#live].map((w) => w.process.pid),
      answered,
      workers: this.#workerCountFor(this.#loaded),
      generation: this.#generation,
      restarts: this.#restarts,
      upstreams: this.#loaded.graph.upstreams,
      store: await store,
    });
  }

  #adminSource() {
    return {
      version: VERSION,
      startedAt: this.#startedAt,
      // Ready while at least one worker serves: the kernel only hands connections to
      // listening workers, so a worker being replaced does not stop the node serving.
      ready: () => this.#started && !this.#stopping && this.#workers.some((w) => w.ready),
      status: async () => ({
        version: VERSION,
        uptime_seconds: Math.round((Date.now() - this.#startedAt) / 1000),
        config_file: this.#file,
        config_generation: this.#generation,
        workers: this.#workers.map((w) => ({ pid: w.process.pid, ready: w.ready, generation: w.serving })),
        worker_restarts: this.#restarts,
        draining_workers: [...this.#live].filter((w) => w.retiring).length,
        stopping: this.#stopping,
        // Counted by the metrics; a fresh scrape of the workers makes them current.
        requests: (await this.#scrapeMetrics()) === null ? null : this.#metrics.requestCounts,
        store: await this.#storeStatus(),
      }),
      config: () => ({ value: this.#loaded.config, secrets: this.#loaded.secrets }),
      reload: (reason: string, actor?: AuditActor) => this.reload(reason, actor),
      metrics: () => this.#scrapeMetrics(),
      upstreams: () => upstreamsStatus(this.#loaded.graph.upstreams, (upstream, target) => (this.#clusterHealth.shares(upstream) ? this.#clusterHealth.source(upstream, target) : null)),
    };
  }
}

/** Who asked for a reload, from its reason when the caller did not say. */
function actorFor(reason: string, file: string): AuditActor {
  if (reason === "admin API") return { type: "admin_api", address: null };
  if (reason === "config file changed") return { type: "file_watch", file };
  return { type: "signal", signal: reason };
}

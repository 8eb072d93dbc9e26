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
import { resolve } from "node:path";
import type { Server, Subprocess } from "bun";
import { startAdmin } from "../admin/server.ts";
import { ConfigLoader, type LoadedConfig } from "../config/load.ts";
import { formatError } from "../config/source.ts";
import type { Logger } from "../observability/logger.ts";
import { VERSION } from "../version.ts";
import type { FromWorker, ToWorker } from "./messages.ts";

/** How long new workers may take to report ready before a start or reload fails. */
const READY_TIMEOUT_MS = 15_000;
/** A worker that dies sooner than this after starting counts as crash-looping. */
const CRASH_WINDOW_MS = 2_000;

interface WorkerHandle {
  process: Subprocess<"ignore", "inherit", "inherit">;
  slot: number;
  generation: number;
  startedAt: number;
  ready: boolean;
  retiring: boolean;
  waiters: ((message: FromWorker) => void)[];
}

/** Supervisor options from the command line. */
export interface SupervisorOptions {
  file: string;
  workers: number | null;
  log: Logger;
}

/** Starts the gateway; resolves once every worker serves, rejects if the start fails. */
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
  #workers: WorkerHandle[] = [];
  readonly #retiring = new Set<WorkerHandle>();
  #admin: Server<unknown> | null = null;
  #watcher: FSWatcher | null = null;
  #stopping = false;
  #reloading: Promise<{ ok: boolean; errors: string[]; generation: number }> | null = null;
  #restarts = 0;
  #recentCrashes = 0;

  constructor(options: SupervisorOptions) {
    this.#file = resolve(options.file);
    this.#log = options.log;
    this.#requestedWorkers = options.workers;
  }

  get #workerCount(): number {
    return this.#requestedWorkers ?? this.#loaded.graph.workers ?? navigator.hardwareConcurrency ?? 1;
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

    process.on("SIGHUP", () => void this.reload("SIGHUP"));
    process.on("SIGTERM", () => void this.shutdown("SIGTERM"));
    process.on("SIGINT", () => void this.shutdown("SIGINT"));

    const graph = this.#loaded.graph;
    if (graph.admin.enabled) {
      try {
        this.#admin = startAdmin(graph.admin.address, graph.admin.port, this.#adminSource());
      } catch (error) {
        console.error(`cannot start the admin listener on ${graph.admin.address}:${graph.admin.port}: ${(error as Error).message}`);
        process.exit(1);
      }
    }

    const started = await this.#startGeneration(this.#generation, this.#workerCount);
    if (!started.ok) {
      for (const line of started.errors) console.error(line);
      await this.#kill(started.workers);
      process.exit(1);
    }
    this.#workers = started.workers;
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
    try {
      text = readFileSync(this.#file, "utf8");
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
      onExit: (_proc, exitCode, signalCode) => this.#onExit(handle, exitCode, signalCode),
    });
    return handle;
  }

  #send(handle: WorkerHandle, message: ToWorker): void {
    try {
      handle.process.send(message);
    } catch (error) {
      this.#log.warn("cannot reach worker", { pid: handle.process.pid, error });
    }
  }

  #onMessage(handle: WorkerHandle, message: FromWorker): void {
    if (message.type === "hello") {
      const generation = handle.generation;
      this.#send(handle, { type: "config", generation, file: this.#file, text: generation === this.#generation ? this.#text : this.#pendingText });
      return;
    }
    if (message.type === "ready") handle.ready = true;
    const waiters = handle.waiters;
    handle.waiters = [];
    for (const waiter of waiters) waiter(message);
  }

  /** Config text of a generation being started by a reload, before it becomes current. */
  #pendingText = "";

  #onExit(handle: WorkerHandle, exitCode: number | null, signalCode: string | null): void {
    for (const waiter of handle.waiters) waiter({ type: "failed", generation: handle.generation, errors: [`worker exited (${exitCode ?? signalCode})`] });
    handle.waiters = [];
    if (this.#retiring.delete(handle) || handle.retiring) return;
    const index = this.#workers.indexOf(handle);
    if (index < 0 || this.#stopping) return;
    const lived = performance.now() - handle.startedAt;
    this.#recentCrashes = lived < CRASH_WINDOW_MS ? this.#recentCrashes + 1 : 0;
    this.#restarts++;
    this.#log.warn("worker exited; starting a replacement", {
      pid: handle.process.pid,
      exit_code: exitCode,
      signal: signalCode,
      lived_ms: Math.round(lived),
    });
    // A crash loop backs off, but never past one second.
    const delay = Math.min(1000, this.#recentCrashes > 1 ? 100 * 2 ** (this.#recentCrashes - 2) : 0);
    setTimeout(() => {
      if (this.#stopping || this.#workers[index] !== handle) return;
      const replacement = this.#spawn(handle.slot, this.#generation);
      this.#workers[index] = replacement;
    }, delay);
  }

  /** Waits for the next message of a worker that satisfies `accept`. */
  #await(handle: WorkerHandle, accept: (m: FromWorker) => boolean, timeoutMs: number): Promise<FromWorker> {
    return new Promise((resolvePromise) => {
      const timer = setTimeout(() => {
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

  /** Reloads the config file; concurrent calls share one reload. */
  reload(reason: string): Promise<{ ok: boolean; errors: string[]; generation: number }> {
    if (this.#stopping) return Promise.resolve({ ok: false, errors: ["shutting down"], generation: this.#generation });
    this.#reloading ??= this.#reload(reason).finally(() => {
      this.#reloading = null;
    });
    return this.#reloading;
  }

  async #reload(reason: string): Promise<{ ok: boolean; errors: string[]; generation: number }> {
    const next = this.#load();
    if (!next.ok) {
      this.#log.error("reload failed; the current config keeps serving", { reason, generation: this.#generation, errors: next.errors });
      return { ok: false, errors: next.errors, generation: this.#generation };
    }
    const generation = this.#generation + 1;
    const inPlace = next.loaded.graph.listenerFingerprint === this.#loaded.graph.listenerFingerprint;
    if (inPlace) {
      const answers = await Promise.all(
        this.#workers.map((worker) => {
          const answer = this.#await(worker, (m) => m.type === "reloaded" && m.generation === generation, READY_TIMEOUT_MS);
          this.#send(worker, { type: "config", generation, file: this.#file, text: next.text });
          return answer;
        }),
      );
      const errors = [...new Set(answers.flatMap((a) => (a.type === "failed" ? a.errors : [])))];
      if (errors.length > 0) {
        // Workers that failed keep their old graph; restart them so all serve one config.
        this.#log.error("some workers rejected the new config", { reason, errors });
      }
      for (const worker of this.#workers) worker.generation = generation;
    } else {
      this.#pendingText = next.text;
      const started = await this.#startGeneration(generation, this.#workerCount);
      if (!started.ok) {
        await this.#kill(started.workers);
        this.#log.error("reload failed: new workers did not start; the current config keeps serving", { reason, errors: started.errors });
        next.loaded.graph.dispose();
        return { ok: false, errors: started.errors, generation: this.#generation };
      }
      const old = this.#workers;
      this.#workers = started.workers;
      for (const worker of old) {
        worker.retiring = true;
        this.#retiring.add(worker);
        this.#send(worker, { type: "drain" });
      }
    }
    const previous = this.#loaded;
    this.#loaded = next.loaded;
    this.#text = next.text;
    this.#generation = generation;
    previous.graph.dispose();
    this.#log.info("config reloaded", { reason, generation, mode: inPlace ? "in place" : "rolling restart" });
    return { ok: true, errors: [], generation };
  }

  #watch(): void {
    let timer: ReturnType<typeof setTimeout> | null = null;
    try {
      this.#watcher = watch(this.#file, () => {
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => void this.reload("config file changed"), 200);
      });
    } catch (error) {
      this.#log.warn("cannot watch the config file; use SIGHUP to reload", { error });
    }
  }

  async shutdown(reason: string): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#watcher?.close();
    const everyone = [...this.#workers, ...this.#retiring];
    this.#log.info("shutting down: draining workers", { reason, workers: everyone.length });
    for (const worker of everyone) this.#send(worker, { type: "drain" });
    const grace = this.#loaded.graph.drainTimeoutMs + 5_000;
    const timeout = Bun.sleep(grace).then(() => "timeout" as const);
    const result = await Promise.race([Promise.all(everyone.map((w) => w.process.exited)), timeout]);
    if (result === "timeout") {
      this.#log.warn("workers did not exit in time; killing them");
      for (const worker of everyone) worker.process.kill("SIGKILL");
    }
    this.#admin?.stop(true);
    this.#log.info("stopped");
    process.exit(0);
  }

  #adminSource() {
    return {
      version: VERSION,
      startedAt: this.#startedAt,
      ready: () => this.#workers.length > 0 && this.#workers.every((w) => w.ready) && !this.#stopping,
      status: () => ({
        version: VERSION,
        uptime_seconds: Math.round((Date.now() - this.#startedAt) / 1000),
        config_file: this.#file,
        config_generation: this.#generation,
        workers: this.#workers.map((w) => ({ pid: w.process.pid, ready: w.ready, generation: w.generation })),
        worker_restarts: this.#restarts,
        draining_workers: this.#retiring.size,
      }),
      config: () => ({ value: this.#loaded.config, secrets: this.#loaded.secrets }),
      reload: (reason: string) => this.reload(reason),
    };
  }
}

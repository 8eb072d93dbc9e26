/**
 * A buffered, append-only log destination for high-volume lines (the access log).
 *
 * Lines are collected in memory and written in batches, one `write()` per batch, when
 * the batch reaches `batchBytes` or `flushIntervalMs` after its first line. The file is
 * opened with O_APPEND, so several processes can share it: on local Linux filesystems
 * (ext4, xfs, tmpfs) one `write()` to a regular file is not interleaved with another
 * process's, so lines stay whole. On stdout (which may be a pipe) batches are cut at line
 * ends into writes of at most PIPE_BUF (4096 bytes), the size a pipe keeps whole.
 *
 * Writing never blocks a request: writes are asynchronous, one at a time; lines that
 * arrive while the destination is unusable (cannot be opened, disk full, writes too
 * slow to keep up) are dropped and counted, and the loss is logged once per episode.
 * `reopen()` (on SIGUSR1) opens the path again, for log rotation.
 */
import { close as closeFd, closeSync, openSync, write as writeFd, writeSync } from "node:fs";
import type { Logger } from "./logger.ts";

/** Largest write a pipe keeps whole (Linux PIPE_BUF). */
const PIPE_ATOMIC_BYTES = 4096;
/** An unusable file is tried again at most this often (ms). */
const RETRY_OPEN_MS = 5_000;

/** How a `BufferedLogFile` batches its lines. */
export interface LogBufferOptions {
  /** A batch is written once it holds this many bytes (approximately: UTF-16 length). */
  batchBytes: number;
  /** A batch is written at most this long after its first line (ms). */
  flushIntervalMs: number;
  /** Lines beyond this many buffered bytes (while a write is slow) are dropped. */
  maxPendingBytes: number;
}

/** An append-only file (or stdout) written in batches. */
export class BufferedLogFile {
  #fd: number | null = null;
  #pending: string[] = [];
  #pendingBytes = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #writing = false;
  #reopenWanted = false;
  #lastOpenAttempt = -Infinity;
  #closed = false;
  /** A loss was reported and the destination has not worked since. */
  #troubled = false;
  /** Lines dropped since the destination last worked. */
  #droppedInEpisode = 0;
  /** Lines dropped over the life of this destination. */
  dropped = 0;

  constructor(
    /** A file path, or `stdout`. */
    readonly path: string,
    readonly options: LogBufferOptions,
    readonly log: Logger,
    /** Names this destination in its own log lines, e.g. `access log`. */
    readonly label: string,
  ) {
    this.#open();
  }

  /** Queues one line (with its trailing newline). Never throws, never blocks. */
  append(line: string): void {
    if (this.#closed) {
      this.dropped++;
      return;
    }
    if (this.#pendingBytes + line.length > this.options.maxPendingBytes) {
      this.#drop(1, "writes fall behind");
      return;
    }
    this.#pending.push(line);
    this.#pendingBytes += line.length;
    if (this.#pendingBytes >= this.options.batchBytes) this.#flush();
    else if (this.#timer === null) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#flush();
      }, this.options.flushIntervalMs);
      this.#timer.unref?.();
    }
  }

  /** Opens the path again after the current write (log rotation). */
  reopen(): void {
    if (this.path === "stdout" || this.#closed) return;
    this.#reopenWanted = true;
    if (!this.#writing) this.#reopenNow();
  }

  /** Writes what is buffered synchronously and closes the file. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    // An asynchronous write may still be under way: the rest is written after it in the
    // file because O_APPEND orders by the time each write reaches the kernel.
    const text = this.#take();
    if (text.length > 0 && this.#usable()) {
      try {
        for (const chunk of this.#chunks(text)) writeSync(this.#fd!, chunk);
      } catch (error) {
        this.#drop(countLines(text), (error as NodeJS.ErrnoException).code ?? String(error));
      }
    } else if (text.length > 0) this.#drop(countLines(text), "not open");
    if (this.dropped > 0) this.log.warn(`${this.label}: lines dropped in total`, { path: this.path, dropped: this.dropped });
    // A write still under way closes the file when it is done (see #writeChunks).
    if (this.#fd !== null && this.path !== "stdout" && !this.#writing) {
      try {
        closeSync(this.#fd);
      } catch {
        // nothing left to do
      }
      this.#fd = null;
    }
  }

  #open(): void {
    this.#lastOpenAttempt = performance.now();
    if (this.path === "stdout") {
      this.#fd = 1;
      return;
    }
    try {
      this.#fd = openSync(this.path, "a", 0o644);
    } catch (error) {
      this.#fd = null;
      this.#drop(0, (error as NodeJS.ErrnoException).code ?? String(error));
    }
  }

  #reopenNow(): void {
    this.#reopenWanted = false;
    const old = this.#fd;
    this.#fd = null;
    if (old !== null) closeFd(old, () => {});
    this.#open();
    this.log.info(`${this.label} reopened`, { path: this.path, ok: this.#fd !== null });
  }

  /** The file is open, or was tried again now and opened. */
  #usable(): boolean {
    if (this.#fd === null && performance.now() - this.#lastOpenAttempt >= RETRY_OPEN_MS) this.#open();
    return this.#fd !== null;
  }

  #take(): string {
    const text = this.#pending.length === 1 ? this.#pending[0]! : this.#pending.join("");
    this.#pending = [];
    this.#pendingBytes = 0;
    return text;
  }

  #flush(): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#writing || this.#pending.length === 0) return;
    if (this.#reopenWanted) this.#reopenNow();
    const text = this.#take();
    if (!this.#usable()) {
      this.#drop(countLines(text), "not open");
      return;
    }
    this.#writeChunks(this.#chunks(text), 0);
  }

  #writeChunks(chunks: Buffer[], index: number): void {
    const fd = this.#fd!;
    this.#writing = true;
    const chunk = chunks[index]!;
    writeFd(fd, chunk, (error, written) => {
      if (error && this.#closed) {
        // Closing raced this write; what it held is counted, not reported again.
        this.dropped += countLines(chunk.toString());
      } else if (error || written < chunk.length) {
        // A short write only happens when the disk fills up; the rest of the batch is lost.
        let lost = countLines(chunk.subarray(error ? 0 : written).toString());
        for (let i = index + 1; i < chunks.length; i++) lost += countLines(chunks[i]!.toString());
        this.#drop(lost, error ? (error.code ?? error.message) : "short write");
      } else if (index + 1 < chunks.length) {
        this.#writeChunks(chunks, index + 1);
        return;
      } else if (this.#troubled && !this.#closed) {
        this.log.warn(`${this.label} writable again`, { path: this.path, dropped: this.#droppedInEpisode });
        this.#troubled = false;
        this.#droppedInEpisode = 0;
      }
      this.#writing = false;
      if (this.#closed) {
        if (this.path !== "stdout") closeFd(fd, () => {});
        this.#fd = null;
        return;
      }
      if (this.#reopenWanted) this.#reopenNow();
      // Lines that came during the write: send them now if a batch is full, else on time.
      if (this.#pendingBytes >= this.options.batchBytes) this.#flush();
      else if (this.#pending.length > 0 && this.#timer === null) {
        this.#timer = setTimeout(() => {
          this.#timer = null;
          this.#flush();
        }, this.options.flushIntervalMs);
        this.#timer.unref?.();
      }
    });
  }

  /** One buffer per write: the whole batch for a file, pipe-sized pieces cut at line ends for stdout. */
  #chunks(text: string): Buffer[] {
    const bytes = Buffer.from(text);
    if (this.path !== "stdout" || bytes.length <= PIPE_ATOMIC_BYTES) return [bytes];
    const chunks: Buffer[] = [];
    let start = 0;
    while (start < bytes.length) {
      let end = Math.min(start + PIPE_ATOMIC_BYTES, bytes.length);
      if (end < bytes.length) {
        const newline = bytes.lastIndexOf(10, end - 1);
        // A single line longer than PIPE_BUF is written whole (it may interleave on a pipe).
        end = newline >= start ? newline + 1 : bytes.indexOf(10, end) + 1 || bytes.length;
      }
      chunks.push(bytes.subarray(start, end));
      start = end;
    }
    return chunks;
  }

  /** Counts lost lines; the first loss of an episode is logged (not every line). */
  #drop(lines: number, reason: string): void {
    if (!this.#troubled) {
      this.#troubled = true;
      this.log.warn(`${this.label} cannot be written; dropping lines until it can`, { path: this.path, reason });
    }
    this.#droppedInEpisode += lines;
    this.dropped += lines;
  }
}

function countLines(text: string): number {
  let count = 0;
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) count++;
  return count;
}

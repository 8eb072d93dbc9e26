/**
 * A region of memory that every worker process of one node maps: a file in /dev/shm,
 * created by the supervisor, mapped with libc `mmap(MAP_SHARED)` through bun:ffi.
 * Writes by one process are seen by all others; use `Atomics` on views of `buffer`.
 *
 * The supervisor calls `createSharedFile` before it starts workers and passes the path in
 * the environment (`SHARED_MEMORY_ENV`); workers call `mapSharedFile`. The file lives as
 * long as the supervisor: workers that restart or reload map the same memory again. It
 * is removed on shutdown (`removeSharedFile`); one left by a killed supervisor is a few
 * MiB in /dev/shm with the supervisor's pid in its name.
 */
import { closeSync, existsSync, ftruncateSync, openSync, readdirSync, unlinkSync } from "node:fs";
import { dlopen, FFIType, toArrayBuffer, type Pointer } from "bun:ffi";

/** Environment variable naming the shared memory file for worker processes. */
export const SHARED_MEMORY_ENV = "TURNPIKE_SHARED_MEMORY";

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;

type Libc = {
  mmap(addr: number, length: number, prot: number, flags: number, fd: number, offset: number): Pointer | null;
};

let libc: Libc | null = null;

/** libc's mmap, loaded on first use (a process that shares nothing never loads it). */
function loadLibc(): Libc {
  if (libc) return libc;
  const library = dlopen("libc.so.6", {
    mmap: { args: [FFIType.u64, FFIType.u64, FFIType.i32, FFIType.i32, FFIType.i32, FFIType.i64], returns: FFIType.ptr },
  });
  libc = library.symbols as unknown as Libc;
  return libc;
}

/** Where the supervisor puts its shared memory file: /dev/shm when present, else the temp folder. */
export function defaultSharedPath(): string {
  const folder = existsSync("/dev/shm") ? "/dev/shm" : (process.env.TMPDIR ?? "/tmp");
  const random = Math.floor(Math.random() * 0xffffffff).toString(16);
  return `${folder}/turnpike-${process.pid}-${random}`;
}

/**
 * Creates a zero-filled file of `bytes` at `path` (failing if it exists) and maps it.
 * The caller owns the file and removes it with `removeSharedFile`.
 */
export function createSharedFile(path: string, bytes: number): ArrayBuffer {
  const fd = openSync(path, "wx+", 0o600);
  try {
    ftruncateSync(fd, bytes);
    return mapFd(fd, bytes, path);
  } finally {
    closeSync(fd);
  }
}

/** Maps an existing shared memory file (made by `createSharedFile`) of `bytes`. */
export function mapSharedFile(path: string, bytes: number): ArrayBuffer {
  const fd = openSync(path, "r+");
  try {
    return mapFd(fd, bytes, path);
  } finally {
    // The mapping outlives the descriptor.
    closeSync(fd);
  }
}

/**
 * Removes shared memory files left in `folder` by supervisors that no longer run (killed
 * before they could remove their own): `turnpike-<pid>-<random>` whose pid is gone.
 * Returns how many. Workers still mapping such a file keep their memory.
 */
export function removeStaleSharedFiles(folder = "/dev/shm"): number {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(folder);
  } catch {
    return 0;
  }
  for (const name of names) {
    const match = /^turnpike-(\d+)-[0-9a-f]+$/.exec(name);
    if (!match || processExists(Number(match[1]))) continue;
    try {
      unlinkSync(`${folder}/${name}`);
      removed++;
    } catch {
      // Removed meanwhile, or not ours to remove.
    }
  }
  return removed;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Removes the file; processes that mapped it keep their memory until they exit. */
export function removeSharedFile(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

function mapFd(fd: number, bytes: number, path: string): ArrayBuffer {
  const address = loadLibc().mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  // MAP_FAILED is (void *) -1. (A null pointer argument crashes Bun 1.4.5's FFI: the hint address is passed as 0.)
  if (address === null || (address as unknown as number) <= 0 || (address as unknown as number) >= 2 ** 63) {
    throw new Error(`cannot map shared memory ${path}`);
  }
  return toArrayBuffer(address, 0, bytes);
}

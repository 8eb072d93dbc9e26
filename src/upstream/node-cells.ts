/**
 * Node-wide integer cells for upstream state (in-flight counts, health, ejection and
 * circuit breaker state): blocks of the node's shared memory (src/shared), so that every
 * worker process and the supervisor see one state. The same key gives the same cells in
 * every process; cells are used with Atomics. Blocks are looked up once, when a config
 * is compiled; the request path then costs one atomic operation per update.
 */
import { BLOCK_WORDS, nodeTable } from "../shared/index.ts";

/** A run of cells reserved for one key: `cells[offset]` .. `cells[offset + length - 1]`. */
export interface CellBlock {
  readonly cells: Int32Array;
  readonly offset: number;
}

/** Where node-wide cells come from. */
export interface NodeCells {
  /** The cells of `key` (zero when first reserved, at most BLOCK_WORDS); a private block when the table is full. */
  block(key: string, length: number): CellBlock;
  /** Frees the cells of `key` (a block nobody will use again). */
  release?(key: string): void;
}

/** Cells in the node's shared memory (a private table in a process without a supervisor). */
export const sharedCells: NodeCells = {
  block(key, length) {
    if (length > BLOCK_WORDS) throw new Error(`a node-wide block holds at most ${BLOCK_WORDS} cells`);
    const block = nodeTable().block(key);
    // A full table degrades to per-process state rather than failing the config.
    return block ? { cells: block.words, offset: block.offset } : { cells: new Int32Array(new SharedArrayBuffer(length * 4)), offset: 0 };
  },
  release(key) {
    nodeTable().delete(key);
  },
};

/** Cells in this process's memory only (tests). */
export function localCells(): NodeCells {
  const blocks = new Map<string, CellBlock>();
  return {
    block(key, length) {
      let block = blocks.get(key);
      if (!block) blocks.set(key, (block = { cells: new Int32Array(new SharedArrayBuffer(length * 4)), offset: 0 }));
      return block;
    },
    release(key) {
      blocks.delete(key);
    },
  };
}

let current: NodeCells = sharedCells;

/** The cells upstreams compiled from now on use. */
export function nodeCells(): NodeCells {
  return current;
}

/** Switches the cells for upstreams compiled from now on (tests); returns the previous ones. */
export function useNodeCells(cells: NodeCells): NodeCells {
  const previous = current;
  current = cells;
  return previous;
}

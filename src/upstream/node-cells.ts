/**
 * Node-wide integer cells for upstream state (in-flight counts, health, ejection and
 * circuit breaker state). The same key gives the same cells in every process of a node,
 * so that every worker and the supervisor see one state. Cells are used with Atomics.
 *
 * The process-local implementation here serves tests and the single-process case; a
 * worker process switches to the node's shared memory segment with `useNodeCells`.
 */

/** A run of `length` cells reserved for one key: `cells[offset]` .. `cells[offset + length - 1]`. */
export interface CellBlock {
  readonly cells: Int32Array;
  readonly offset: number;
}

/** Where node-wide cells come from. */
export interface NodeCells {
  /** `shared` (every process of the node) or `local` (this process only). */
  readonly kind: "shared" | "local";
  /** The cells of `key` (zero when first reserved); null when the table is full. */
  block(key: string, length: number): CellBlock | null;
}

/** Cells in this process's memory. */
export function localCells(): NodeCells {
  const blocks = new Map<string, CellBlock>();
  return {
    kind: "local",
    block(key, length) {
      let block = blocks.get(key);
      if (!block || block.cells.length - block.offset < length) {
        block = { cells: new Int32Array(new SharedArrayBuffer(length * 4)), offset: 0 };
        blocks.set(key, block);
      }
      return block;
    },
  };
}

let current: NodeCells = localCells();

/** The cells upstreams compiled from now on use. */
export function nodeCells(): NodeCells {
  return current;
}

/** Switches the cells for upstreams compiled from now on (returns the previous ones, for tests). */
export function useNodeCells(cells: NodeCells): NodeCells {
  const previous = current;
  current = cells;
  return previous;
}

/** First byte of an arena block: how the rest is encoded. */
export const ENCODING = { JSON: 0x4a, CLONE: 0x56 } as const;

/**
 * Serialised events of types handled in worker isolates live here, in a
 * SharedArrayBuffer every isolate maps: written once at emission, read in
 * place by the isolate, freed when the event's work ends. This thread is
 * the only allocator. Blocks are power-of-two sized (64 B up) with a free
 * list per size, so freeing in any order never fragments the arena into
 * unusable pieces; the price is up to 2x space for a block.
 */
export class Arena {
  readonly buffer: SharedArrayBuffer;
  readonly bytes: Uint8Array;
  readonly #free: number[][] = [];
  /** Offset 0 is never handed out: a ring record's arena word 0 means "no bytes". */
  #top = 64;
  #used = 0;

  constructor(size: number) {
    this.buffer = new SharedArrayBuffer(size);
    this.bytes = new Uint8Array(this.buffer);
  }

  /** Bytes in blocks handed out. */
  get used(): number {
    return this.#used;
  }

  static #sizeClass(len: number): number {
    return Math.max(6, 32 - Math.clz32(Math.max(len, 1) - 1));
  }

  /**
   * Copies `tag` then `data` into a new block; its offset, or -1 when the
   * arena is full. The block's length is `data.length + 1`.
   */
  store(tag: number, data: Uint8Array): number {
    const cls = Arena.#sizeClass(data.length + 1);
    const size = 2 ** cls;
    let offset = this.#free[cls]?.pop();
    if (offset === undefined) {
      if (this.#top + size > this.buffer.byteLength) return -1;
      offset = this.#top;
      this.#top += size;
    }
    this.bytes[offset] = tag;
    this.bytes.set(data, offset + 1);
    this.#used += size;
    return offset;
  }

  free(offset: number, len: number): void {
    const cls = Arena.#sizeClass(len);
    (this.#free[cls] ??= []).push(offset);
    this.#used -= 2 ** cls;
  }
}

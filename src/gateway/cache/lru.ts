/**
 * The gateway cache's local tier: entries by key in least-recently-used order, bounded by the bytes
 * of their JSON text. An entry past its expiry is dropped when it is next looked at; adding one
 * that breaks the bound evicts the least recently used until it fits.
 */

export interface CachedEntry {
  /** The result as JSON text. */
  json: string;
  /** When it was stored upstream-side (ms since the epoch): its age is counted from here. */
  storedAt: number;
  expiresAt: number;
  /** The bytes it counts for (its JSON text, UTF-8). */
  bytes: number;
}

export class ByteLru {
  private readonly entries = new Map<string, CachedEntry>();
  private total = 0;
  /** Entries dropped to make room. */
  evictions = 0;

  constructor(readonly maxBytes: number) {}

  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The live entry under `key`, made the most recently used; undefined when absent or expired. */
  get(key: string, now: number): CachedEntry | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (entry.expiresAt <= now) {
      this.total -= entry.bytes;
      return undefined;
    }
    this.entries.set(key, entry);
    return entry;
  }

  /** Stores `entry`, evicting the least recently used ones to stay within the bound; an entry larger than the bound is not kept. */
  set(key: string, entry: CachedEntry): void {
    this.delete(key);
    if (entry.bytes > this.maxBytes) return;
    this.entries.set(key, entry);
    this.total += entry.bytes;
    for (const [oldest, old] of this.entries) {
      if (this.total <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.total -= old.bytes;
      this.evictions += 1;
    }
  }

  delete(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.total -= entry.bytes;
  }

  /** Drops every entry whose key starts with `prefix` (every entry without one); returns how many. */
  deletePrefix(prefix?: string): number {
    let dropped = 0;
    for (const key of [...this.entries.keys()]) {
      if (prefix !== undefined && !key.startsWith(prefix)) continue;
      this.delete(key);
      dropped += 1;
    }
    return dropped;
  }
}

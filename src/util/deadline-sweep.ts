/**
 * The deadlines of a table of pending calls with one timer instead of one per call. Each entry of the
 * table keeps its deadline; the sweep is armed at the earliest one it was told of and, when it fires,
 * expires what is due and re-arms at the next. Entries that settle (leave the table) cost nothing
 * here: a timer armed for one of them fires later over a table without it, and re-arms.
 *
 * The timer is unref'd: what waits on the table (a socket, a child process) keeps the process alive.
 */

/** Node runs a longer timer at once (after 1 ms): the sweep waits in steps of at most this. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class DeadlineSweep<K, V extends { deadline: number }> {
  private timer: NodeJS.Timeout | undefined;
  /** When the timer fires (epoch ms); Infinity when none is armed. */
  private armedAt = Number.POSITIVE_INFINITY;

  /** `expire` is told of each entry of `table` whose deadline (epoch ms) has come; it takes it out of the table. */
  constructor(
    private readonly table: Map<K, V>,
    private readonly expire: (key: K, entry: V) => void,
  ) {}

  /** An entry is due at `deadline` (epoch ms). */
  due(deadline: number): void {
    if (deadline < this.armedAt) this.arm(deadline);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Number.POSITIVE_INFINITY;
  }

  private arm(deadline: number): void {
    clearTimeout(this.timer);
    this.armedAt = deadline;
    this.timer = setTimeout(() => this.fire(), Math.min(Math.max(deadline - Date.now(), 0), MAX_TIMER_MS));
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.armedAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [key, entry] of [...this.table]) {
      if (entry.deadline <= now) this.expire(key, entry);
      else next = Math.min(next, entry.deadline);
    }
    if (next !== Number.POSITIVE_INFINITY) this.due(next);
  }
}

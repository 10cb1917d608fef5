/**
 * What a follow of a session stream (PROTOCOL.md §19.3) checks when a consumer it reads is new. A
 * consumer made again (by the follow or by nats.js) starts where its server's copy of the stream lets
 * it: at the oldest message kept there, past the follow's next event when that event was discarded
 * meanwhile (only the last 100 of a subject are kept) or when that copy lacks it. Its delivery
 * sequence shows nothing (nats.js checks only that), so its first message is compared with what the
 * stream's leader holds on the subject.
 */

/** A message of the followed subject, as the stream's leader holds it. */
export interface HeldMessage {
  seq: number;
  data: Uint8Array;
}

/** The followed subject as the stream's leader holds it. */
export interface SubjectHistory {
  /** Whether the stream still holds message `seq`. */
  holds(seq: number): Promise<boolean>;
  /** The first message of the subject at `seq` or after, if any. */
  firstFrom(seq: number): Promise<HeldMessage | undefined>;
  /** How many messages of the subject the stream holds. */
  count(): Promise<number>;
}

/** Events after the follow's last one were discarded before it read them: it cannot go on without a gap. */
export class EventsDiscardedError extends Error {
  constructor(readonly lastSeq: number) {
    super(`events of the followed stream after sequence ${lastSeq} were discarded before they were read (the stream keeps the last ones of each subject)`);
    this.name = "EventsDiscardedError";
  }
}

/** Where the follow stands when a new consumer hands it its first message (of sequence `seq`). */
export interface FollowPosition {
  /** The sequence the follow reads from (one after its last message). */
  next: number;
  /** The sequence of the last message it delivered, if it delivered one. */
  last: number | undefined;
  /** How many messages of a subject the stream keeps. */
  keptPerSubject: number;
}

/**
 * The messages of the subject the leader holds between the follow's position and `seq`, which the
 * new consumer skipped (to hand on before it, oldest first). Throws EventsDiscardedError when the
 * follow's last message is gone while the subject is full: the per-subject limit, which discards the
 * oldest first, may have taken later ones too. (A last message gone while the subject is not full
 * aged out: the follow delivered everything from then on.)
 */
export async function skippedBefore(history: SubjectHistory, seq: number, position: FollowPosition): Promise<HeldMessage[]> {
  const { next, last, keptPerSubject } = position;
  if (seq <= next) return [];
  if (last !== undefined && !(await history.holds(last)) && (await history.count()) >= keptPerSubject) throw new EventsDiscardedError(last);
  const skipped: HeldMessage[] = [];
  for (let from = next; ; ) {
    const held = await history.firstFrom(from);
    if (!held || held.seq >= seq) return skipped;
    skipped.push(held);
    from = held.seq + 1;
  }
}

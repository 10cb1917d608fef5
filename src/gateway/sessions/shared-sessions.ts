/**
 * Client sessions shared by the gateways of one bus (PROTOCOL.md §19): each session's state in the
 * sessions bucket, so that a gateway that did not initialize a session can serve it. The gateway
 * holding a session keeps it in memory and reads nothing per call; it writes the record when the
 * session's state changes, and again when the session is used after a tenth of the idle timeout (a
 * record not written for the idle timeout expires).
 */
import { ensureSessionsBucket, type Bus, type SessionsBucket } from "../../bus/index.js";
import type { Logger } from "../../util/index.js";
import { SessionStateSchema, type SessionState } from "./session-state.js";

/** What a session id must look like to be looked up (a KV key; the SDK's ids are UUIDs). */
const SESSION_ID = /^[A-Za-z0-9_-]{1,128}$/;

export interface SessionChanges {
  /** Another gateway wrote the session's state. */
  changed(id: string, state: SessionState): void;
  /** The session was deleted (by any gateway). */
  removed(id: string): void;
}

export class SharedSessions {
  private stopWatch: (() => void) | undefined;

  private constructor(
    private readonly bucket: SessionsBucket,
    private readonly gatewayId: string,
    private readonly logger: Logger,
    /** A used session's record is written again after this long. */
    readonly refreshMs: number,
  ) {}

  /** Opens the sessions bucket (made with `idleMs` as its max age unless it exists). */
  static async open(bus: Bus, options: { idleMs: number; gatewayId: string; logger: Logger }): Promise<SharedSessions> {
    const bucket = await ensureSessionsBucket(bus, options.idleMs);
    return new SharedSessions(bucket, options.gatewayId, options.logger, Math.max(1000, Math.floor(options.idleMs / 10)));
  }

  static isSessionId(id: string): boolean {
    return SESSION_ID.test(id);
  }

  async save(id: string, state: Omit<SessionState, "v" | "gateway">): Promise<void> {
    const record: SessionState = { ...state, v: 1, gateway: this.gatewayId };
    await this.bucket.put(id, new TextEncoder().encode(JSON.stringify(record)));
  }

  /** The session's state, or undefined when no gateway holds it (never, expired, deleted, or a record that fails the check). */
  async load(id: string): Promise<SessionState | undefined> {
    if (!SharedSessions.isSessionId(id)) return undefined;
    const value = await this.bucket.get(id);
    return value === undefined ? undefined : this.parse(id, value);
  }

  async remove(id: string): Promise<void> {
    await this.bucket.delete(id);
  }

  /** Follows what other gateways do to the sessions, until `stop`. */
  async watch(changes: SessionChanges): Promise<void> {
    this.stopWatch = await this.bucket.watch(({ key, value }) => {
      if (value === undefined) {
        changes.removed(key);
        return;
      }
      const state = this.parse(key, value);
      if (state && state.gateway !== this.gatewayId) changes.changed(key, state);
    });
  }

  stop(): void {
    this.stopWatch?.();
    this.stopWatch = undefined;
  }

  private parse(id: string, value: Uint8Array): SessionState | undefined {
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(value));
    } catch {
      json = undefined;
    }
    const parsed = SessionStateSchema.safeParse(json);
    if (parsed.success) return parsed.data;
    this.logger.warn({ session: id }, "ignoring a session record that is not one this gateway reads");
    return undefined;
  }
}

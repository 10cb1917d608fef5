/**
 * A 2026-07-28 upstream tells of changed lists only on `subscriptions/listen` streams: not in the
 * executor's 2025 session, whose GET stream hears only that session's own changes. While the upstream
 * speaks that revision the executor keeps one listen stream open there; its notifications reach the
 * executor's usual handler (catalog re-read, announcement), and a stream that ends is reopened.
 */
import { DmcpError, ErrorCode } from "../../protocol/index.js";
import type { Logger } from "../../util/index.js";
import { CLIENT_INFO } from "./opener.js";
import { statelessEnvelope, type UpstreamInfo, type UpstreamRequestOptions } from "./upstream.js";

/** The `_meta` of a request the executor itself makes at a stateless revision (its catalog reads and listen stream). */
export function ownStatelessMeta(version: string): Record<string, unknown> {
  return statelessEnvelope(version, CLIENT_INFO);
}

/** The list changes to listen for: those the server says it announces. */
export function listenFilter(info: UpstreamInfo): Record<string, boolean> | undefined {
  const filter: Record<string, boolean> = {};
  for (const list of ["tools", "prompts", "resources"] as const) {
    if ((info.capabilities[list] as { listChanged?: unknown } | undefined)?.listChanged === true) filter[`${list}ListChanged`] = true;
  }
  return Object.keys(filter).length > 0 ? filter : undefined;
}

export interface ListenBackoff {
  initialMs: number;
  maxMs: number;
  /** A stream that stayed open this long resets the backoff. */
  stableMs: number;
}

export const DEFAULT_LISTEN_BACKOFF: ListenBackoff = { initialMs: 500, maxMs: 30_000, stableMs: 30_000 };

/**
 * A listen stream never answers while it is open; its request is given up after this long and opened
 * again (the longest a Node timer holds is about 24.8 days).
 */
const LISTEN_REQUEST_MS = 24 * 60 * 60_000;

type Requester = (method: string, params: Record<string, unknown>, options: UpstreamRequestOptions) => Promise<Record<string, unknown>>;

export class UpstreamListen {
  /** Bumped by begin() and end(): a loop of an older generation stops. */
  private generation = 0;
  private controller: AbortController | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly request: Requester,
    private readonly logger: Logger,
    private readonly backoff: ListenBackoff = DEFAULT_LISTEN_BACKOFF,
  ) {}

  /** Listens on a (newly connected) upstream that speaks `version`, replacing any earlier stream. */
  begin(version: string, info: UpstreamInfo): void {
    this.end();
    const filter = listenFilter(info);
    if (!filter) return;
    void this.run(++this.generation, version, { notifications: filter, _meta: ownStatelessMeta(version) });
  }

  /** Closes the stream and stops reopening it (upstream gone, executor stopping). */
  end(): void {
    this.generation++;
    this.controller?.abort();
    this.controller = undefined;
    this.wake?.();
  }

  private async run(generation: number, revision: string, params: Record<string, unknown>): Promise<void> {
    let delayMs = this.backoff.initialMs;
    while (generation === this.generation) {
      const controller = new AbortController();
      this.controller = controller;
      const openedAt = Date.now();
      try {
        await this.request("subscriptions/listen", params, { timeoutMs: LISTEN_REQUEST_MS, signal: controller.signal, revision });
        this.logger.debug("the upstream ended its listen stream");
      } catch (err) {
        if (generation !== this.generation) return;
        // A server that refuses the method (or the filter) would refuse it again: not asked until it reconnects.
        if (err instanceof DmcpError && err.code === ErrorCode.UpstreamError) {
          this.logger.warn({ err }, "the upstream refused subscriptions/listen: its list changes will not be heard");
          return;
        }
        this.logger.debug({ err }, "the upstream's listen stream dropped");
      }
      if (generation !== this.generation) return;
      if (Date.now() - openedAt >= this.backoff.stableMs) delayMs = this.backoff.initialMs;
      await this.pause(delayMs);
      delayMs = Math.min(this.backoff.maxMs, delayMs * 2);
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref?.();
      this.wake = done;
    });
  }
}

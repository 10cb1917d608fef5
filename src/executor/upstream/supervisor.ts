/**
 * Keeps one upstream session alive: connects, reconnects with exponential backoff when it dies, and
 * answers calls made while it is down with a clear UPSTREAM_UNAVAILABLE error instead of waiting.
 * An upstream that never came up fails start() unless asked to keep trying.
 */
import { ErrorCode, UpstreamError } from "../../protocol/index.js";
import type { Logger } from "../../util/index.js";
import type { OpensUpstream } from "./opener.js";
import { describeError, type McpUpstream, type UpstreamInfo, type UpstreamRequestOptions } from "./upstream.js";

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** A session that stayed up this long resets the backoff. */
  stableMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 30_000, stableMs: 30_000 };

export interface SupervisorEvents {
  onUp?: (info: UpstreamInfo, upstream: McpUpstream) => void;
  onDown?: (error: Error | undefined) => void;
  onNotification?: (method: string, params: Record<string, unknown> | undefined) => void;
}

export class UpstreamSupervisor {
  private upstream: McpUpstream | undefined;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private nextRetryAt = 0;
  private stopped = false;
  private lastError: string | undefined;

  constructor(
    private readonly opener: OpensUpstream,
    private readonly logger: Logger,
    private readonly events: SupervisorEvents = {},
    private readonly backoff: BackoffOptions = DEFAULT_BACKOFF,
  ) {}

  /**
   * Connects once. On failure: with `keepTrying`, retries in the background and resolves false;
   * without, rejects with the error and leaves nothing running (the server never started: a wrong
   * command or URL is not fixed by retrying).
   */
  async start(keepTrying = true): Promise<boolean> {
    return this.connect(keepTrying);
  }

  get info(): UpstreamInfo | undefined {
    return this.upstream?.info;
  }

  get isUp(): boolean {
    return this.upstream !== undefined && !this.upstream.isClosed;
  }

  request(method: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions): Promise<Record<string, unknown>> {
    const upstream = this.upstream;
    if (!upstream || upstream.isClosed) {
      const retryIn = Math.max(0, this.nextRetryAt - Date.now());
      return Promise.reject(
        new UpstreamError(
          ErrorCode.UpstreamUnavailable,
          `the upstream MCP server (${this.opener.description}) is down` +
            (this.stopped ? "" : `; restart attempt ${this.attempt} in ${retryIn} ms`) +
            (this.lastError ? ` (last error: ${this.lastError})` : ""),
          { data: { retry_in_ms: retryIn } },
        ),
      );
    }
    return upstream.request(method, params, options);
  }

  /**
   * Shutdown has begun: an upstream that goes away from now on is let go, not restarted nor reported
   * (in a terminal, Ctrl-C reaches the wrapped server too). The live session serves until stop().
   */
  beginShutdown(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }

  async stop(): Promise<void> {
    this.beginShutdown();
    const upstream = this.upstream;
    this.upstream = undefined;
    await upstream?.close();
  }

  private async connect(keepTrying = true): Promise<boolean> {
    if (this.stopped) return false;
    this.attempt++;
    let upstream: McpUpstream;
    try {
      upstream = await this.opener.connect(this.logger);
    } catch (err) {
      if (!keepTrying) throw err;
      this.lastError = describeError(err);
      if (this.stopped) return false;
      this.logger.error({ err, attempt: this.attempt }, "could not start the upstream MCP server");
      this.scheduleRetry();
      return false;
    }
    if (this.stopped) {
      await upstream.close();
      return false;
    }
    const connectedAt = Date.now();
    this.upstream = upstream;
    this.lastError = undefined;
    upstream.onnotification = (method, params) => this.events.onNotification?.(method, params);
    upstream.onclose = (error) => {
      if (this.upstream !== upstream) return;
      this.upstream = undefined;
      if (Date.now() - connectedAt >= this.backoff.stableMs) this.attempt = 0;
      this.lastError = error ? describeError(error) : "the upstream closed";
      if (this.stopped) return;
      this.logger.warn({ err: error }, "the upstream MCP server went away; restarting it");
      this.events.onDown?.(error);
      this.scheduleRetry();
    };
    this.logger.info({ upstream: this.opener.description, protocolVersion: upstream.info?.protocolVersion }, "upstream MCP server connected");
    this.events.onUp?.(upstream.info!, upstream);
    return true;
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    const delay = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** Math.max(0, this.attempt - 1));
    this.nextRetryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => void this.connect(), delay);
    this.retryTimer.unref?.();
  }
}

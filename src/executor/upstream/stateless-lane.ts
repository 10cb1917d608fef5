/**
 * The stateless lane: a second connection to an upstream whose connection is one session (stdio),
 * never initialized, that carries the requests of 2026-07-28 clients as genuine stateless requests.
 * In the initialized session the server would take them as that session's: its `input_required`
 * results would become server-to-client requests, and the request's own client capabilities would
 * not count. Probed once when the executor starts (its `server/discover` tells which stateless
 * versions the server serves), then kept up and restarted with backoff like the main session.
 */
import { DmcpError, ErrorCode } from "../../protocol/index.js";
import type { Logger } from "../../util/index.js";
import type { OpensUpstream, UpstreamOpener } from "./opener.js";
import { UpstreamSupervisor, type BackoffOptions, type SupervisorEvents } from "./supervisor.js";
import { describeError, type McpUpstream, type UpstreamInfo, type UpstreamRequestOptions } from "./upstream.js";

export class StatelessLane {
  private readonly supervisor: UpstreamSupervisor | undefined;
  private readonly connectStateless: ((logger: Logger) => Promise<McpUpstream>) | undefined;
  private readonly logger: Logger;
  private opened: Promise<void> | undefined;
  /** The probe's connection, until the supervisor takes it as its first. */
  private probe: Promise<McpUpstream> | undefined;
  /** The stateless versions the lane's server said it serves; none until it first came up. */
  private versions: string[] = [];
  private stopped = false;

  constructor(opener: UpstreamOpener, logger: Logger, events: SupervisorEvents, backoff?: BackoffOptions) {
    this.logger = logger.child({ lane: "stateless" });
    if (!opener.opensStatelessConnections) return;
    const connectStateless = (log: Logger) => opener.connectStateless(log);
    this.connectStateless = connectStateless;
    const lane: OpensUpstream = {
      description: `${opener.description} (stateless lane)`,
      connect: (log) => {
        const probe = this.probe;
        this.probe = undefined;
        return probe ?? connectStateless(log);
      },
    };
    const onUp: SupervisorEvents["onUp"] = (info, upstream) => {
      this.versions = info.statelessVersions ?? [];
      events.onUp?.(info, upstream);
    };
    this.supervisor = new UpstreamSupervisor(lane, this.logger, { ...events, onUp }, backoff);
  }

  /** Probes the upstream in the background (requests that need the lane meanwhile wait for it). */
  start(): void {
    if (this.supervisor) this.opened ??= this.open(this.supervisor);
  }

  /** Settles once the probe started by start() has decided whether the lane serves (at once without one). */
  get ready(): Promise<void> {
    return this.opened ?? Promise.resolve();
  }

  /** Whether a request of `revision` goes to the lane: a stateless revision the lane's server serves. */
  async takes(revision: string | undefined): Promise<boolean> {
    if (!this.supervisor || revision === undefined) return false;
    this.start();
    await this.opened;
    return this.versions.includes(revision);
  }

  /** The lane's server as its `server/discover` described it, while the lane is up. */
  get info(): UpstreamInfo | undefined {
    return this.supervisor?.info;
  }

  request(method: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions): Promise<Record<string, unknown>> {
    return this.supervisor!.request(method, params, options);
  }

  /** Shutdown has begun: the lane's server is not restarted if it goes away (see UpstreamSupervisor). */
  beginShutdown(): void {
    this.stopped = true;
    this.supervisor?.beginShutdown();
  }

  async stop(): Promise<void> {
    this.beginShutdown();
    await this.supervisor?.stop();
    const probe = this.probe;
    this.probe = undefined;
    await (await probe?.catch(() => undefined))?.close();
  }

  private async open(supervisor: UpstreamSupervisor): Promise<void> {
    this.probe = this.connectStateless!(this.logger);
    try {
      await this.probe;
    } catch (err) {
      // Answered, but not as a server of the stateless revision would (an error, no such version, or
      // silence): its 2026-07-28 clients share the main session. A crash is worth retrying, below.
      if (err instanceof DmcpError && err.code !== ErrorCode.UpstreamClosed) {
        this.probe = undefined;
        this.logger.info({ reason: describeError(err) }, "the upstream serves no stateless requests on a connection of their own: 2026-07-28 requests go to its session");
        return;
      }
    }
    if (this.stopped) return;
    await supervisor.start();
  }
}

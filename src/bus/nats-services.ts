/**
 * The NATS services protocol (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`, version io.nats.micro.v1),
 * answered for one service instance, so that standard NATS tooling (`nats micro ls`, the services
 * clients of every NATS library) sees executors and agents with their request statistics. (NATS's
 * own discovery: MCP's `server/discover` is the gateway's, src/gateway.)
 */
import type { Subscription } from "@nats-io/transport-node";
import { natsConnectionOf, type Bus } from "./connection.js";
import type { ServiceEndpoint } from "./endpoint.js";

export interface NatsServicesOptions {
  name: string;
  id: string;
  /** Semantic version, as the protocol requires. */
  version: string;
  description: string;
  metadata: Record<string, string>;
  endpoint: ServiceEndpoint;
}

const VERBS = ["PING", "INFO", "STATS"] as const;
type Verb = (typeof VERBS)[number];

/** Answers the NATS services protocol for one instance of a service. */
export class NatsServicesEndpoint {
  private readonly subscriptions: Subscription[] = [];
  private readonly started = new Date().toISOString();

  constructor(
    private readonly bus: Bus,
    private readonly options: NatsServicesOptions,
  ) {}

  /** Answers `$SRV.<VERB>`, `$SRV.<VERB>.<name>` and `$SRV.<VERB>.<name>.<id>`. */
  start(): void {
    const { name, id } = this.options;
    for (const verb of VERBS) {
      for (const subject of [`$SRV.${verb}`, `$SRV.${verb}.${name}`, `$SRV.${verb}.${name}.${id}`]) {
        this.subscriptions.push(
          natsConnectionOf(this.bus).subscribe(subject, {
            callback: (err, msg) => {
              if (err || !msg.reply) return;
              try {
                msg.respond(JSON.stringify(this.answer(verb)));
              } catch (error) {
                this.bus.logger.debug({ err: error }, "could not answer a services protocol request");
              }
            },
          }),
        );
      }
    }
  }

  stop(): void {
    for (const sub of this.subscriptions.splice(0)) sub.unsubscribe();
  }

  private answer(verb: Verb): Record<string, unknown> {
    const { name, id, version, metadata, description, endpoint } = this.options;
    const identity = { name, id, version, metadata };
    const endpointInfo = { name: "requests", subject: endpoint.subject, queue_group: endpoint.queueGroup, metadata: { protocol: "dmcp/0.1" } };
    if (verb === "PING") return { type: "io.nats.micro.v1.ping_response", ...identity };
    if (verb === "INFO") return { type: "io.nats.micro.v1.info_response", ...identity, description, endpoints: [endpointInfo] };
    const stats = endpoint.stats;
    return {
      type: "io.nats.micro.v1.stats_response",
      ...identity,
      started: this.started,
      endpoints: [
        {
          ...endpointInfo,
          num_requests: stats.requests,
          num_errors: stats.errors,
          last_error: stats.lastError,
          processing_time: stats.processingTimeNs,
          average_processing_time: stats.requests ? Math.round(stats.processingTimeNs / stats.requests) : 0,
        },
      ],
    };
  }
}

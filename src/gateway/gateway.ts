/** The gateway: one core, any number of client sessions from any inbound transport. */
import { randomUUID } from "node:crypto";
import type { Transport } from "@modelcontextprotocol/server";
import type { Bus } from "../bus/connection.js";
import type { ContextRetention } from "../bus/context.js";
import type { Logger } from "../util/logger.js";
import { GatewayCore } from "./core.js";
import { GatewaySession } from "./session.js";

export interface GatewayOptions {
  bus: Bus;
  logger: Logger;
  id?: string;
  callTimeoutMs?: number;
  contextRetention?: ContextRetention;
}

export class Gateway {
  readonly id: string;
  readonly core: GatewayCore;
  private readonly sessions = new Set<GatewaySession>();
  private readonly logger: Logger;

  constructor(options: GatewayOptions) {
    this.id = options.id ?? `gateway-${randomUUID().slice(0, 8)}`;
    this.logger = options.logger.child({ gateway: this.id });
    this.core = new GatewayCore({
      bus: options.bus,
      logger: this.logger,
      id: this.id,
      ...(options.callTimeoutMs ? { callTimeoutMs: options.callTimeoutMs } : {}),
      ...(options.contextRetention ? { contextRetention: options.contextRetention } : {}),
    });
    this.core.onListChanged((kind) => {
      for (const session of this.sessions) session.notifyListChanged(kind);
    });
    this.core.context.onUpdated((topic) => {
      for (const session of this.sessions) session.notifyResourceUpdated(topic);
    });
  }

  async start(): Promise<void> {
    await this.core.start();
  }

  /** Serves one client connection; the session ends when its transport closes. */
  async connect(transport: Transport): Promise<GatewaySession> {
    const session = new GatewaySession(this.core, transport, this.logger);
    this.sessions.add(session);
    session.onclose = () => this.sessions.delete(session);
    await session.start();
    return session;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.sessions].map((session) => session.close()));
    await this.core.stop();
  }
}

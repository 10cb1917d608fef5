/**
 * One running world for tests that need the whole bridge: a private nats-server, the fixture MCP
 * server wrapped by `dmcp wrap` as one or more services, a `dmcp gateway --http 0`, and a raw MCP
 * client connected to it. Everything it starts is stopped by one `dispose()`, also when starting
 * fails halfway.
 */
import { gatewayTransport, type Inbound, RawMcpClient } from "./mcp-client.js";
import { type EmbeddedNats, type EmbeddedNatsOptions, startTestNats } from "./nats.js";
import { type Child, eventually, startGatewayHttp, wrapFixtureStdio } from "./processes.js";

export interface WorldOptions {
  /** Options of the nats-server (JetStream is on unless told otherwise). */
  nats?: EmbeddedNatsOptions;
  /** The fixture wrapped over stdio once per service: name → extra `dmcp wrap` flags. */
  services?: Record<string, string[]>;
  /** Extra `dmcp gateway` flags, or false for no gateway. */
  gateway?: string[] | false;
  /** The client's inbound transport, or false for no client (no client without a gateway either). */
  client?: Inbound | false;
  /** A tool the client waits to see listed before the world counts as started. */
  awaitTool?: string;
}

export interface World {
  nats: EmbeddedNats;
  /** The `dmcp wrap` process of each service, by service name. */
  executors: Record<string, Child>;
  gateway: Child & { url: string };
  client: RawMcpClient;
  /** Closes the client, stops the gateway and executors, then the nats-server. */
  dispose(): Promise<void>;
}

/** Starts the world the options describe; each part the options leave out is absent from it. */
export async function startWorld(options: WorldOptions = {}): Promise<World> {
  const started: Partial<World> & { executors: Record<string, Child> } = { executors: {} };
  const dispose = async () => {
    await started.client?.close().catch(() => undefined);
    await Promise.allSettled([started.gateway?.stop(), ...Object.values(started.executors).map((executor) => executor.stop())]);
    await started.nats?.stop();
  };
  try {
    started.nats = await startTestNats(options.nats);
    const natsUrl = started.nats.url;
    await Promise.all(
      Object.entries(options.services ?? {}).map(async ([service, flags]) => {
        started.executors[service] = await wrapFixtureStdio(natsUrl, service, flags);
      }),
    );
    if (options.gateway !== false) {
      started.gateway = await startGatewayHttp(natsUrl, options.gateway ?? []);
      const inbound = options.client ?? "http";
      if (inbound !== false) {
        started.client = await RawMcpClient.connect(gatewayTransport(inbound, { natsUrl, httpUrl: started.gateway.url }));
        const tool = options.awaitTool;
        const client = started.client;
        if (tool) await eventually(async () => (await client.toolNames()).includes(tool));
      }
    }
  } catch (err) {
    await dispose();
    throw err;
  }
  return Object.assign(started as World, { dispose });
}

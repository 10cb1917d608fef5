/**
 * The registry view a gateway starts with: once start() resolves it holds every instance already
 * announced in the bucket (a gateway answers its first client from it), against a real nats-server.
 */
import { Kvm } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, InstancePresence, RegistryView, type Bus } from "../../src/bus/index.js";
import { REGISTRY_BUCKET } from "../../src/protocol/index.js";
import { silentLogger } from "../../src/util/logger.js";
import { connectRawNats, provisionTestStreams, startTestNats, type EmbeddedNats } from "../support/nats.js";

const ANNOUNCED = 40;

describe("registry view", () => {
  let nats: EmbeddedNats;
  let bus: Bus;
  const presences: InstancePresence[] = [];

  beforeAll(async () => {
    nats = await startTestNats();
    bus = await connectBus({ servers: nats.url, name: "registry-test", logger: silentLogger() });
    // Made as a gateway makes it: instances announce in a bucket that exists.
    await provisionTestStreams(nats.url);
    for (let i = 0; i < ANNOUNCED; i++) {
      const presence = new InstancePresence(bus, { service: `svc${i}`, instance: `svc${i}-1`, intervalMs: 5000, load: () => ({ status: "ready", inflight: 0, handled: 0 }) });
      await presence.start({
        capabilities: { tools: {} },
        catalog: { tools: [{ name: `tool${i}`, inputSchema: { type: "object" } }], resources: [], resource_templates: [], prompts: [] },
      });
      presences.push(presence);
    }
  });

  afterAll(async () => {
    await Promise.allSettled(presences.map((presence) => presence.stop()));
    await bus?.drain();
    await nats?.stop();
  });

  it("holds every announced instance as soon as start() resolves, each time a view starts", async () => {
    for (let round = 0; round < 10; round++) {
      const viewBus = await connectBus({ servers: nats.url, name: `view-${round}`, logger: silentLogger() });
      const view = new RegistryView(viewBus);
      try {
        await view.start();
        expect(view.list().length, `round ${round}`).toBe(ANNOUNCED);
      } finally {
        await view.stop();
        await viewBus.drain();
      }
    }
  });

  it("puts no announcement once it has left: its deleted key stays deleted (PROTOCOL.md §6.3)", async () => {
    const presence = new InstancePresence(bus, { service: "leaver", instance: "leaver-1", intervalMs: 5000, load: () => ({ status: "ready", inflight: 1, handled: 0 }) });
    const announcement = { capabilities: { tools: {} }, catalog: { tools: [], resources: [], resource_templates: [], prompts: [] } };
    await presence.start(announcement);
    await presence.stop();
    // An executor still finishing its calls re-announces when its upstream's catalog changes.
    await presence.announce({ ...announcement, catalog: { ...announcement.catalog, tools: [{ name: "late", inputSchema: { type: "object" } }] } });
    const raw = await connectRawNats(nats.url);
    const entry = await (await new Kvm(raw).open(REGISTRY_BUCKET)).get("leaver.leaver-1");
    await raw.drain();
    expect(entry?.operation).toBe("DEL");
  });
});

/**
 * `dmcp wrap --nostr --nostr-dialect dvmcp`: a DVMCP server (built in the test from DVMCP's spec, on a
 * real relay) becomes an executor; an MCP client of the gateway calls it through the bus.
 */
import { finalizeEvent, generateSecretKey } from "nostr-tools";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DVMCP_SERVER_ID, type DvmcpServer, startDvmcpServer } from "../support/dvmcp-server.js";
import { itPassesProgressErrorsAndCancellation, type NostrExecutorWorld, startNostrExecutor } from "../support/nostr-executor.js";
import { eventually, runDmcp } from "../support/processes.js";

describe("dmcp wrap --nostr --nostr-dialect dvmcp: a DVMCP server as an executor", () => {
  let world: NostrExecutorWorld<DvmcpServer>;

  beforeAll(async () => {
    world = await startNostrExecutor("dvm", startDvmcpServer, ["--nostr-dialect", "dvmcp"]);
    // A deadline, not a timing assert: several processes start here, slowly on a loaded machine.
  }, 180_000);

  afterAll(async () => {
    await world?.stop();
  });

  it("passes a call and its answer, in DVMCP's simplified form and naming the server in an s tag", async () => {
    const result = await world.client.result("tools/call", { name: "echo", arguments: { text: "over dvmcp" } });
    expect(result.content).toEqual([{ type: "text", text: "echo: over dvmcp" }]);
    const call = world.server.requests.find((event) => event.content.includes("over dvmcp"));
    expect(call?.tags).toEqual(
      expect.arrayContaining([
        ["p", world.server.pubkey],
        ["s", DVMCP_SERVER_ID],
        ["method", "tools/call"],
      ]),
    );
    expect(JSON.parse(call?.content ?? "{}")).toEqual({ method: "tools/call", params: expect.objectContaining({ name: "echo" }) });
  });

  it("tells a DVMCP server by its announcement with --nostr-dialect auto", async () => {
    const auto = runDmcp(["wrap", "--name", "dvm-auto", "--nats", world.nats.url, "--nostr", world.server.pubkey, "--relay", world.relay.url, "--nostr-dialect", "auto"]);
    try {
      const [line] = await auto.waitFor(/.*executor serving.*/);
      expect(line).toContain("nostr (DVMCP)");
      await eventually(async () => (await world.client.toolNames()).includes("dvm-auto__echo"));
      const result = await world.client.result("tools/call", { name: "dvm-auto__echo", arguments: { text: "told apart" } });
      expect(result.content).toEqual([{ type: "text", text: "echo: told apart" }]);
    } finally {
      await auto.stop();
    }
  });

  itPassesProgressErrorsAndCancellation(() => world, "passes progress (and leaves out DVMCP's progress without a figure)");

  describe("bad events addressed to the executor", () => {
    const stranger = generateSecretKey();
    const event = (kind: number, content: string, signer = stranger) =>
      finalizeEvent({ kind, created_at: Math.floor(Date.now() / 1000), tags: [["p", world.executorPubkey]], content }, signer);

    it.each([
      ["a stranger's answer", () => event(26910, JSON.stringify({ content: [] })), /not by the expected/],
      [
        "a ContextVM message (a kind a DVMCP client does not take)",
        () => event(25910, JSON.stringify({ jsonrpc: "2.0", id: 1, result: {} }), world.server.secretKey),
        /kind 25910 is not a message kind/,
      ],
      ["content that is no DVMCP message", () => event(26910, "[1, 2]", world.server.secretKey), /not a DVMCP message/],
      ["a forged signature", () => ({ ...event(26910, "{}", world.server.secretKey), content: JSON.stringify({ forged: true }) }), /forged/],
    ])("drops %s with a log line", async (_name, bad, reason) => {
      world.relay.pushToEverySubscription(bad());
      const [line] = await world.executor.waitFor(new RegExp(`${reason.source}.*dropped a Nostr event|dropped a Nostr event.*${reason.source}`));
      expect(line).toContain("dropped a Nostr event");
    });
  });
});

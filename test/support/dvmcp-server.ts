/**
 * Test helper: a DVMCP server built from DVMCP's spec (2025-03-26), as DVMCP's bridge is one: an MCP
 * SDK server in this process behind a Nostr front on one relay. The front takes kind-25910 requests
 * with simplified content (`{ method, params }`), answers with kind-26910 events (the result itself
 * or `{ error }`, tagged `e` and `p`, plus `d` on the answer to initialize), sends notifications as
 * kind-21316 events (first, as the bridge does, a progress with no token or figure, and a status told
 * in tags only), takes a client's notifications/cancelled, and announces itself (31316) and its
 * tools (31317).
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { finalizeEvent, generateSecretKey, getPublicKey, type NostrEvent } from "nostr-tools";
import { Relay, useWebSocketImplementation } from "nostr-tools/relay";
import { WebSocket } from "ws";
import * as z from "zod";
import { type FixtureToolEvents, registerNostrFixtureTools } from "./nostr-fixture-tools.js";

useWebSocketImplementation(WebSocket);

export const DVMCP_SERVER_ID = "dvmcp-fixture";

export interface DvmcpServer extends FixtureToolEvents {
  readonly pubkey: string;
  readonly secretKey: Uint8Array;
  /** Every request event taken, oldest first. */
  readonly requests: NostrEvent[];
  stop(): Promise<void>;
}

const AnyResult = z.object({}).passthrough();
const tagOf = (event: NostrEvent, name: string) => event.tags.find((tag) => tag[0] === name)?.[1];

export async function startDvmcpServer(relayUrl: string): Promise<DvmcpServer> {
  const secret = generateSecretKey();
  const pubkey = getPublicKey(secret);
  const server = new McpServer({ name: "dvmcp-fixture", version: "1.0.0" });
  const events = registerNostrFixtureTools(server);
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const mcp = new Client({ name: "dvmcp-front", version: "1.0.0" });
  await mcp.connect(clientSide);

  const relay = await Relay.connect(relayUrl);
  const publish = (kind: number, content: string, tags: string[][]) => relay.publish(finalizeEvent({ kind, created_at: Math.floor(Date.now() / 1000), tags, content }, secret));
  const notify = (to: NostrEvent, content: string, tags: string[][] = []) => publish(21316, content, [["p", to.pubkey], ["e", to.id], ...tags]);
  const answer = (to: NostrEvent, content: unknown, tags: string[][] = []) => publish(26910, JSON.stringify(content), [["e", to.id], ["p", to.pubkey], ...tags]);
  const requests: NostrEvent[] = [];
  const running = new Map<string, AbortController>();
  const initializeResult = { protocolVersion: "2025-03-26", capabilities: mcp.getServerCapabilities(), serverInfo: mcp.getServerVersion() };

  async function onRequest(request: NostrEvent): Promise<void> {
    requests.push(request);
    const { method, params } = JSON.parse(request.content) as { method: string; params?: { _meta?: { progressToken?: string | number } } };
    if (method === "initialize") return void (await answer(request, initializeResult, [["d", DVMCP_SERVER_ID]]));
    if (tagOf(request, "s") !== DVMCP_SERVER_ID) return void (await answer(request, { error: { code: -32602, message: `no s tag naming ${DVMCP_SERVER_ID}` } }));
    const controller = new AbortController();
    running.set(request.id, controller);
    const progressToken = params?._meta?.progressToken;
    try {
      await notify(request, JSON.stringify({ method: "notifications/progress", params: { message: "processing" } }), [["method", "notifications/progress"]]);
      const result = await mcp.request({ method, params } as never, AnyResult, {
        signal: controller.signal,
        ...(progressToken === undefined
          ? {}
          : {
              onprogress: ({ progress, total }) =>
                void notify(request, JSON.stringify({ method: "notifications/progress", params: { progressToken, progress, total } }), [["method", "notifications/progress"]]),
            }),
      });
      await notify(request, "", [["status", "success"]]);
      await answer(request, result);
    } catch (err) {
      if (!controller.signal.aborted) await answer(request, { error: { code: err instanceof McpError ? err.code : -32603, message: (err as Error).message } });
    } finally {
      running.delete(request.id);
    }
  }

  function onNotification(event: NostrEvent): void {
    const { method, params } = JSON.parse(event.content) as { method?: string; params?: { requestId?: string; reason?: string } };
    if (method === "notifications/cancelled" && params?.requestId) running.get(params.requestId)?.abort(params.reason);
  }

  await new Promise<void>((resolve) => {
    relay.subscribe([{ kinds: [25910, 21316], "#p": [pubkey] }], {
      onevent: (event) => (event.kind === 25910 ? void onRequest(event).catch(() => undefined) : onNotification(event)),
      oneose: resolve,
    });
  });
  const { tools } = await mcp.listTools();
  await publish(31316, JSON.stringify(initializeResult), [
    ["d", DVMCP_SERVER_ID],
    ["k", "25910"],
    ["name", "DVMCP fixture"],
  ]);
  await publish(31317, JSON.stringify({ tools }), [["d", `${DVMCP_SERVER_ID}/tools/list`], ["s", DVMCP_SERVER_ID], ...tools.map((tool) => ["cap", tool.name])]);

  return {
    pubkey,
    secretKey: secret,
    requests,
    ...events,
    async stop() {
      relay.close();
      await mcp.close();
      await server.close();
    },
  };
}

/**
 * Two streams of an HTTP upstream that speaks 2026-07-28 (the conformance fixture), through the bus:
 * the executor's own subscriptions/listen stream upstream, whose list changes reach a 2026 client's
 * listen stream at the gateway (and which is opened again after the upstream restarts), and a call's
 * SSE stream that the upstream closes mid-call to be polled (SEP-1699), which closes the client's
 * stream too; the client resumes it with Last-Event-ID and gets the answer.
 * Real nats-server, gateway, executor and fixture processes; raw HTTP on the client side.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, REPO_ROOT, spawnNode, startGatewayHttp, wrapUrl, type Child } from "../support/processes.js";
import { STATELESS_META, STATELESS_VERSION, statelessPost } from "../support/stateless-client.js";

const FIXTURE = `${REPO_ROOT}dist/test/support/fixtures/conformance-server.js`;

interface SseEvent {
  id?: string;
  retry?: string;
  data: string;
}

/** Reads an SSE response as it arrives: `events` grows; `ended` settles when the server closes the stream. */
function readSse(response: Response): { events: SseEvent[]; messages: () => Record<string, any>[]; ended: Promise<void>; cancel: () => Promise<void> } {
  const events: SseEvent[] = [];
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const ended = (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      for (let end = buffer.indexOf("\n\n"); end !== -1; end = buffer.indexOf("\n\n")) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event: SseEvent = { data: "" };
        for (const line of block.split("\n")) {
          const colon = line.indexOf(":");
          if (colon <= 0) continue;
          const field = line.slice(0, colon);
          const value = line.slice(colon + 1).trimStart();
          if (field === "id") event.id = value;
          else if (field === "retry") event.retry = value;
          else if (field === "data") event.data += value;
        }
        if (event.id !== undefined || event.data !== "") events.push(event);
      }
    }
  })();
  return {
    events,
    messages: () => events.filter((event) => event.data !== "").map((event) => JSON.parse(event.data) as Record<string, any>),
    ended,
    cancel: () => reader.cancel().catch(() => undefined),
  };
}

/** A 2026-07-28 listen stream at `url` for tool and prompt list changes. */
async function listen(url: string) {
  const body = {
    jsonrpc: "2.0",
    id: "listen-1",
    method: "subscriptions/listen",
    params: { notifications: { toolsListChanged: true, promptsListChanged: true }, _meta: STATELESS_META },
  };
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": STATELESS_VERSION, "mcp-method": "subscriptions/listen" },
    body: JSON.stringify(body),
  });
  expect(response.headers.get("content-type")).toContain("text/event-stream");
  const stream = readSse(response);
  await eventually(() => stream.messages().some((message) => message.method === "notifications/subscriptions/acknowledged"));
  return stream;
}

const toolNames = async (url: string): Promise<string[]> => (((await statelessPost(url, "tools/list")).body.result?.tools ?? []) as { name: string }[]).map((tool) => tool.name);

/** The text of a tool call's result, called as a 2026-07-28 client. */
async function callText(url: string, name: string): Promise<string> {
  const { body } = await statelessPost(url, "tools/call", { name, arguments: {} });
  return String(body.result?.content?.[0]?.text ?? JSON.stringify(body));
}

describe("an HTTP upstream's listen and polled streams, through the bus", () => {
  let nats: EmbeddedNats;
  let fixture: Child;
  let port: string;
  let fixtureUrl: string;
  let executor: Child;
  let gateway: Child & { url: string };

  const startFixture = async (onPort: string) => {
    fixture = spawnNode([FIXTURE, "--http", onPort]);
    [, port] = (await fixture.waitFor(/LISTENING (\d+)/)) as [string, string];
    fixtureUrl = `http://127.0.0.1:${port}/mcp`;
  };

  /** Waits until the gateway lists the upstream's tools (a fresh fixture's generated tool is number 0). */
  const listed = () => eventually(async () => (await toolNames(gateway.url)).includes("test_generated_tool_0"), 30_000);

  beforeAll(async () => {
    nats = await startTestNats();
    await startFixture("0");
    executor = await wrapUrl(nats.url, "remote", fixtureUrl);
    // A plain call keeps JSON however slow (by default one unanswered after 50 ms gets a resumable stream).
    gateway = await startGatewayHttp(nats.url, ["--resumable-after", "60000"]);
    await listed();
  }, 90_000);

  afterAll(async () => {
    await Promise.allSettled([gateway?.stop(), executor?.stop(), fixture?.stop()]);
    await nats?.stop();
  });

  it("passes a list change the upstream announces on its listen stream to a 2026 client's listen stream", async () => {
    const stream = await listen(gateway.url);
    try {
      // Called as a 2026 client: the fixture announces the change on its listen streams only.
      const changed = (await callText(gateway.url, "remote__test_trigger_tool_change")).match(/test_generated_tool_\d+/)?.[0];
      expect(changed).toBeDefined();
      // Only a re-read after the change shows the new name: the executor heard it.
      await eventually(async () => (await toolNames(gateway.url)).includes(changed!), 15_000);
      await eventually(() => stream.messages().some((message) => message.method === "notifications/tools/list_changed"), 15_000);
      const prompt = (await callText(gateway.url, "remote__test_trigger_prompt_change")).match(/test_generated_prompt_\d+/)?.[0];
      const promptNames = async () => (((await statelessPost(gateway.url, "prompts/list")).body.result?.prompts ?? []) as { name: string }[]).map((item) => item.name);
      await eventually(async () => (await promptNames()).includes(prompt!), 15_000);
      await eventually(() => stream.messages().some((message) => message.method === "notifications/prompts/list_changed"), 15_000);
      // Tagged with the client's own subscription, not the executor's upstream one.
      const notice = stream.messages().find((message) => message.method === "notifications/tools/list_changed")!;
      expect(notice.params._meta["io.modelcontextprotocol/subscriptionId"]).toBe("listen-1");
    } finally {
      await stream.cancel();
    }
  }, 60_000);

  it("listens again on the upstream once it is back after a restart", async () => {
    await fixture.stop();
    await startFixture(port);
    // The restarted fixture counts from 0 again; the executor reconnects and re-reads its lists.
    await listed();
    const stream = await listen(gateway.url);
    try {
      // The executor's old session may linger a moment (a call then finds the upstream down): retried like a client would.
      const trigger = async () => (await callText(gateway.url, "remote__test_trigger_tool_change")).match(/test_generated_tool_\d+/)?.[0];
      const changed = await eventually(trigger, 15_000);
      await eventually(async () => (await toolNames(gateway.url)).includes(changed), 15_000);
      await eventually(() => stream.messages().some((message) => message.method === "notifications/tools/list_changed"), 15_000);
    } finally {
      await stream.cancel();
    }
  }, 90_000);

  describe("a call whose upstream stream closes mid-call (test_reconnection)", () => {
    /** A 2025 session at the gateway at `version`; returns the headers of its later requests. */
    const open = async (version: string) => {
      const init = await fetch(gateway.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 0,
          method: "initialize",
          params: { protocolVersion: version, capabilities: {}, clientInfo: { name: "polling", version: "1" } },
        }),
      });
      const session = init.headers.get("mcp-session-id")!;
      await init.text();
      const headers = { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-session-id": session, "mcp-protocol-version": version };
      await (await fetch(gateway.url, { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) })).text();
      return headers;
    };
    /** The call; with `stream`, it asks for progress, and so for a stream of its own (a plain call is answered with JSON). */
    const call = (headers: Record<string, string>, stream = true) =>
      fetch(gateway.url, {
        method: "POST",
        headers,
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 7,
          method: "tools/call",
          params: { name: "remote__test_reconnection", arguments: {}, ...(stream ? { _meta: { progressToken: "p7" } } : {}) },
        }),
      });
    const isAnswer = (message: Record<string, any>) => message.id === 7 && message.result !== undefined;

    it("closes a resumable client's stream before the answer, and replays the answer after Last-Event-ID", async () => {
      const headers = await open("2025-11-25");
      const post = readSse(await call(headers));
      await post.ended;
      // The stream was closed by the gateway, not ended by the answer: only the priming event came.
      expect(post.messages().some(isAnswer)).toBe(false);
      const last = post.events.at(-1)!;
      expect(last).toMatchObject({ data: "", retry: "1000" });
      const resumed = await fetch(gateway.url, { method: "GET", headers: { ...headers, accept: "text/event-stream", "last-event-id": last.id! } });
      expect(resumed.status).toBe(200);
      const replay = readSse(resumed);
      try {
        await eventually(() => replay.messages().some(isAnswer), 15_000);
        expect(replay.messages().find(isAnswer)!.result.content).toEqual([{ type: "text", text: "Reconnection test completed" }]);
      } finally {
        await replay.cancel();
      }
    }, 30_000);

    it("keeps the stream of a client that cannot resume it (2025-06-18: no priming event) open until the answer", async () => {
      const headers = await open("2025-06-18");
      const post = readSse(await call(headers));
      await post.ended;
      expect(post.messages().find(isAnswer)?.result.content).toEqual([{ type: "text", text: "Reconnection test completed" }]);
    }, 30_000);

    it("answers a plain call with JSON once the executor has the answer: its client holds no stream to close", async () => {
      const headers = await open("2025-11-25");
      const response = await call(headers, false);
      expect(response.headers.get("content-type")).toContain("application/json");
      const answer = (await response.json()) as Record<string, any>;
      expect(isAnswer(answer)).toBe(true);
      expect(answer.result.content).toEqual([{ type: "text", text: "Reconnection test completed" }]);
    }, 30_000);
  });
});

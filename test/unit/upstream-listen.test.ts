/**
 * The executor's listen loop on a 2026-07-28 upstream (src/executor/upstream/upstream-listen.ts), on a clock
 * of the test's own: a stream that ends is reopened after a growing pause (never in a hot loop), a
 * refusal is not retried, and end() closes the stream and stops the loop. The end-to-end behaviour,
 * with a real upstream, is in upstream-streams.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DmcpError, ErrorCode } from "../../src/protocol/index.js";
import { listenFilter, UpstreamListen } from "../../src/executor/upstream/upstream-listen.js";
import type { UpstreamInfo, UpstreamRequestOptions } from "../../src/executor/upstream/upstream.js";
import { silentLogger } from "../../src/util/logger.js";

const INFO: UpstreamInfo = {
  protocolVersion: "2025-11-25",
  statelessVersions: ["2026-07-28"],
  capabilities: { tools: { listChanged: true }, prompts: { listChanged: true }, resources: { subscribe: true } },
  serverInfo: {},
};
const BACKOFF = { initialMs: 500, maxMs: 4000, stableMs: 30_000 };
const logger = silentLogger();

/** An upstream whose listen requests the test ends one by one. */
function upstream() {
  const opened: { params: Record<string, unknown>; options: UpstreamRequestOptions; end: (error?: Error) => void }[] = [];
  const request = (method: string, params: Record<string, unknown>, options: UpstreamRequestOptions) => {
    expect(method).toBe("subscriptions/listen");
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      opened.push({ params, options, end: (error) => (error ? reject(error) : resolve({})) });
      options.signal?.addEventListener("abort", () => reject(new DmcpError(ErrorCode.Cancelled, "cancelled")), { once: true });
    });
  };
  return { opened, request };
}

describe("the executor's listen stream on a 2026-07-28 upstream", () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it("asks for the list changes the server declares, with the revision's _meta", async () => {
    expect(listenFilter(INFO)).toEqual({ toolsListChanged: true, promptsListChanged: true });
    expect(listenFilter({ ...INFO, capabilities: { tools: {} } })).toBeUndefined();
    const { opened, request } = upstream();
    const listen = new UpstreamListen(request, logger, BACKOFF);
    listen.begin("2026-07-28", INFO);
    await vi.advanceTimersByTimeAsync(0);
    expect(opened).toHaveLength(1);
    expect(opened[0]!.params).toMatchObject({
      notifications: { toolsListChanged: true, promptsListChanged: true },
      _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} },
    });
    listen.end();
  });

  it("does not listen to a server that announces no list changes", async () => {
    const { opened, request } = upstream();
    new UpstreamListen(request, logger, BACKOFF).begin("2026-07-28", { ...INFO, capabilities: { tools: {} } });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(opened).toHaveLength(0);
  });

  it("reopens a stream that ends after a pause that doubles up to the maximum", async () => {
    const { opened, request } = upstream();
    const listen = new UpstreamListen(request, logger, BACKOFF);
    listen.begin("2026-07-28", INFO);
    await vi.advanceTimersByTimeAsync(0);
    const pauses: number[] = [];
    for (let round = 0; round < 5; round++) {
      // Ended gracefully or dropped: either way the next one waits.
      opened.at(-1)!.end(round % 2 === 0 ? undefined : new DmcpError(ErrorCode.UpstreamClosed, "dropped"));
      const before = opened.length;
      let waited = 0;
      while (opened.length === before) {
        await vi.advanceTimersByTimeAsync(100);
        waited += 100;
        expect(waited).toBeLessThanOrEqual(BACKOFF.maxMs);
      }
      pauses.push(waited);
    }
    expect(pauses).toEqual([500, 1000, 2000, 4000, 4000]);
    listen.end();
  });

  it("does not ask again a server that refused the method", async () => {
    const { opened, request } = upstream();
    const listen = new UpstreamListen(request, logger, BACKOFF);
    listen.begin("2026-07-28", INFO);
    await vi.advanceTimersByTimeAsync(0);
    opened[0]!.end(new DmcpError(ErrorCode.UpstreamError, "Method not found", { jsonrpcCode: -32601 }));
    await vi.advanceTimersByTimeAsync(120_000);
    expect(opened).toHaveLength(1);
    // A reconnected upstream is asked again.
    listen.begin("2026-07-28", INFO);
    await vi.advanceTimersByTimeAsync(0);
    expect(opened).toHaveLength(2);
    listen.end();
  });

  it("closes the open stream on end(), and opens none after, nor during a pause", async () => {
    const { opened, request } = upstream();
    const listen = new UpstreamListen(request, logger, BACKOFF);
    listen.begin("2026-07-28", INFO);
    await vi.advanceTimersByTimeAsync(0);
    listen.end();
    expect(opened[0]!.options.signal?.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(opened).toHaveLength(1);
    // Stopped while waiting to reopen.
    listen.begin("2026-07-28", INFO);
    await vi.advanceTimersByTimeAsync(0);
    opened.at(-1)!.end();
    await vi.advanceTimersByTimeAsync(100);
    listen.end();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(opened).toHaveLength(2);
  });
});

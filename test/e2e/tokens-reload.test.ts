/**
 * The HTTP gateway follows its tokens file: a user removed from it is refused (401) from the next
 * request and their open sessions close, a user added is accepted, a file that becomes invalid or
 * unreadable keeps the last good tokens, and SIGHUP rereads a change the watch cannot see. A real
 * gateway process, executor and nats-server; the file is edited as editors and secret mounts do.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EmbeddedNats } from "../support/nats.js";
import { eventually, startGatewayHttp, type Child } from "../support/processes.js";
import { openSession, readStreamUntil } from "../support/sse.js";
import { startWorld, type World } from "../support/world.js";

describe("reloading the tokens file", () => {
  let world: World;
  let nats: EmbeddedNats;
  let gateway: Child & { url: string };
  let dir: string;
  /** The path the gateway was given: a symlink to a file in another directory, which the gateway does not watch. */
  let tokensPath: string;
  let hiddenFile: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dmcp-tokens-"));
    mkdirSync(join(dir, "watched"));
    mkdirSync(join(dir, "elsewhere"));
    hiddenFile = join(dir, "elsewhere", "tokens");
    tokensPath = join(dir, "watched", "tokens");
    writeFileSync(hiddenFile, "alice:alice-token\nbob:bob-token\ndave:dave-token\n");
    symlinkSync(hiddenFile, tokensPath);
    world = await startWorld({ services: { legacy: [] }, gateway: ["--auth-tokens", tokensPath], client: false });
    ({ nats, gateway } = world);
  }, 60_000);

  afterAll(async () => {
    await world?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The HTTP status of a tools/list with this token in `session`, or of an initialize without one. */
  const statusOf = async (token: string, session?: () => Record<string, string>) => {
    const headers = session ? session() : { "content-type": "application/json", accept: "application/json, text/event-stream" };
    const initialize = { method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "tokens-reload", version: "1" } } };
    const response = await fetch(gateway.url, {
      method: "POST",
      headers: { ...headers, authorization: `Bearer ${token}` },
      body: JSON.stringify({ jsonrpc: "2.0", id: 9, ...(session ? { method: "tools/list" } : initialize) }),
    });
    await response.text();
    return response.status;
  };
  const refusedEventually = (token: string, session?: () => Record<string, string>) => eventually(async () => (await statusOf(token, session)) === 401, 10_000, 50);
  /** Rewrites the watched path as editors do: a new file renamed over the old one. */
  const replaceFile = (text: string) => {
    writeFileSync(`${tokensPath}.tmp`, text);
    renameSync(`${tokensPath}.tmp`, tokensPath);
  };
  /** Waits for the log line of a reload like `expected` (it may come after the 401: stderr is another pipe). */
  const reloadLogged = (expected: Record<string, unknown>) =>
    eventually(
      () => {
        const reloads = gateway.stderr.filter((line) => line.includes("tokens file reloaded")).map((line) => JSON.parse(line) as unknown);
        expect(reloads).toContainEqual(expect.objectContaining(expected));
        return true;
      },
      10_000,
      50,
    );

  it("rereads on SIGHUP a change the watch cannot see", async () => {
    const dave = await openSession(gateway.url, "Bearer dave-token");
    writeFileSync(hiddenFile, "alice:alice-token\nbob:bob-token\ncarol:carol-token\n");
    gateway.kill("SIGHUP");
    await refusedEventually("dave-token", dave);
    await reloadLogged({ reason: "SIGHUP", added: ["carol"], removed: ["dave"] });
    expect(await statusOf("carol-token")).toBe(200);
    expect(gateway.process.exitCode).toBeNull();
  });

  it("refuses a user removed from the file at their next request, closes their open session, and accepts a user added", async () => {
    const alice = await openSession(gateway.url, "Bearer alice-token");
    const bob = await openSession(gateway.url, "Bearer bob-token");
    const aliceStream = await fetch(gateway.url, { method: "GET", headers: { ...alice(), accept: "text/event-stream" } });
    expect(aliceStream.status).toBe(200);
    const aliceStreamEnds = readStreamUntil(aliceStream, "no such marker: read to the end");

    replaceFile("bob:bob-token\ncarol:carol-token\nerin:erin-token\n");
    await refusedEventually("alice-token", alice);
    await reloadLogged({ reason: "file changed", added: expect.arrayContaining(["erin"]), removed: expect.arrayContaining(["alice"]) });
    // Her open stream ended with her session, without another request.
    await aliceStreamEnds;
    expect(await statusOf("alice-token")).toBe(401);
    expect(await statusOf("erin-token")).toBe(200);
    // Bob is still named: his session goes on.
    expect(await statusOf("bob-token", bob)).toBe(200);
  });

  it("keeps authentication on while the file names nobody, and accepts the first name added", async () => {
    const emptyFile = join(dir, "watched", "nobody-yet");
    writeFileSync(emptyFile, "# no users yet\n");
    const closed = await startGatewayHttp(nats.url, ["--auth-tokens", emptyFile]);
    try {
      const initialize = (authorization?: string) =>
        fetch(closed.url, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...(authorization ? { authorization } : {}) },
          body: JSON.stringify({
            jsonrpc: "2.0",
            id: 1,
            method: "initialize",
            params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "1" } },
          }),
        }).then(async (response) => {
          await response.text();
          return response.status;
        });
      expect(await initialize()).toBe(401);
      writeFileSync(emptyFile, "frank:frank-token\n");
      await eventually(async () => (await initialize("Bearer frank-token")) === 200, 10_000, 50);
    } finally {
      await closed.stop();
    }
  });

  it("keeps the last good tokens when the file becomes invalid or unreadable", async () => {
    const errors = () => gateway.stderr.filter((line) => line.includes("keeping the last good tokens"));
    replaceFile("bob:bob-token\ncarol:carol-token\nerin:erin-token\n");
    await eventually(async () => (await statusOf("erin-token")) === 200, 10_000, 50);
    const bob = await openSession(gateway.url, "Bearer bob-token");
    writeFileSync(tokensPath, "bob:bob-token\nerin-without-a-name\n");
    const invalid = await eventually(() => errors().find((line) => line.includes("token entry 2")), 10_000, 50);
    expect(invalid).not.toContain("erin-without-a-name");
    unlinkSync(tokensPath);
    await eventually(() => errors().find((line) => line.includes("ENOENT")), 10_000, 50);
    for (const token of ["bob-token", "carol-token", "erin-token"]) expect(await statusOf(token)).toBe(200);
    expect(await statusOf("bob-token", bob)).toBe(200);
    expect(await statusOf("alice-token")).toBe(401);
    // A good file again is taken as it is.
    replaceFile("carol:carol-token\n");
    await refusedEventually("bob-token", bob);
    expect(await statusOf("carol-token")).toBe(200);
  });
});

/**
 * Example: the embedded default, `dmcp up`. One command starts a private nats-server, the MCP
 * servers named in a config file as executors, and a gateway in front of them; `dmcp status` shows
 * what is on the bus; SIGTERM stops it all and leaves no process behind.
 *
 *   dmcp up --config dmcp.config.json --http 0 --data-dir DIR
 *   dmcp status --nats <the "NATS at" URL that dmcp up prints>
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { check, Child, connectHttpClient, describeExit, DMCP, example, mcpServerBin, NODE, onCleanup, run, sleep, step, textOf, waitFor, waitForTools } from "./lib.js";

example("embedded-up", "dmcp up with a config, dmcp status, then a clean SIGTERM shutdown", async () => {
  const dir = await mkdtemp(join(tmpdir(), "dmcp-example-up-"));
  onCleanup("temp dir", () => rm(dir, { recursive: true, force: true }));
  const config = join(dir, "dmcp.config.json");
  await writeFile(
    config,
    JSON.stringify(
      {
        gateway: { http: { port: 0, host: "127.0.0.1" } },
        servers: { everything: { command: NODE, args: [mcpServerBin("server-everything"), "stdio"] } },
      },
      null,
      2,
    ),
  );

  const up = new Child("dmcp up", NODE, [DMCP, "up", "--config", config, "--http", "0", "--data-dir", join(dir, "nats")]);
  const [line, mcpUrl, natsUrl, services] = await up.waitForLine(/dmcp up: MCP at (\S+); NATS at (\S+); services: (.*)/, 30_000);
  step(`dmcp up printed: ${line}`);
  check(services === "everything", `dmcp up reports services "${services}", expected "everything"`);

  const client = await connectHttpClient(mcpUrl!);
  await waitForTools(client, ["get-sum"]);
  const sum = await client.callTool({ name: "get-sum", arguments: { a: 40, b: 2 } });
  check(/\b42\b/.test(textOf(sum)), `get-sum answered ${JSON.stringify(textOf(sum))}, expected 42 in it`);
  step(`get-sum through dmcp up answered ${JSON.stringify(textOf(sum))}`);

  const status = await run("dmcp status", NODE, [DMCP, "status", "--nats", natsUrl!]);
  check(status.code === 0, `dmcp status ended with ${describeExit(status)}: ${status.stderr}`);
  const row = status.stdout.split("\n").find((l) => l.startsWith("everything "));
  check(row !== undefined, `dmcp status does not list the service "everything":\n${status.stdout}`);
  check(row.includes("get-sum") && row.includes("echo"), `dmcp status lists "everything" without its tools: ${row}`);
  step(`dmcp status lists the service:\n${indent(status.stdout)}`);

  // Shut down the way a service manager or Ctrl-C would: a signal to `dmcp up` alone.
  await client.close();
  const natsPids = childPids(up.process.pid!, "nats-server");
  check(natsPids.length === 1, `expected one nats-server child of dmcp up, found ${natsPids.length}`);
  const signalled = Date.now();
  up.signal("SIGTERM");
  const exit = await Promise.race([up.exited, sleep(25_000).then(() => undefined)]);
  check(exit !== undefined, "dmcp up did not exit within 25 s of SIGTERM");
  check(exit.code === 0, `dmcp up ended with ${describeExit(exit)} after SIGTERM, expected exit code 0`);
  step(`dmcp up exited with code 0, ${Date.now() - signalled} ms after SIGTERM`);

  check(!alive(natsPids[0]!), `nats-server (pid ${natsPids[0]}) is still running after dmcp up exited`);
  // Nothing else it started (the wrapped server-everything) may linger in its process group either.
  await waitFor(`the processes dmcp up started to exit`, async () => (alive(-up.process.pid!) ? undefined : true), 5_000);
  step(`its nats-server (pid ${natsPids[0]}) and every other process it started are gone`);
});

/** Pids of the direct children of `parent` whose command name is `name`. */
function childPids(parent: number, name: string): number[] {
  return execFileSync("ps", ["-A", "-o", "pid=,ppid=,comm="], { encoding: "utf8" })
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter(([, ppid, comm]) => Number(ppid) === parent && comm === name)
    .map(([pid]) => Number(pid));
}

/** Whether a process (or, given a negative number, any process of that group) exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function indent(text: string): string {
  return text
    .trimEnd()
    .split("\n")
    .map((line) => (line ? `      ${line}` : ""))
    .join("\n");
}

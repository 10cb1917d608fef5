/**
 * The NATS connection options of the commands against real nats-servers that require them:
 * user/password, token, nkey, and TLS with a private CA. A connection without them is refused with a
 * clear error and exit code 1.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nkeys } from "@nats-io/transport-node";
import { startTestNats, type EmbeddedNats } from "../support/nats.js";
import { eventually, runDmcp } from "../support/processes.js";

async function status(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = runDmcp(["status", "--json", "--wait", "200", ...args]);
  const code = await child.exited;
  await eventually(() => code === 0 || child.stderr.length > 0, 2000).catch(() => undefined);
  return { code, stderr: child.stderr.join("\n") };
}

describe("NATS credentials and TLS", () => {
  const servers: EmbeddedNats[] = [];
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "dmcp-nats-auth-"));
  });

  afterAll(async () => {
    await Promise.allSettled(servers.map((server) => server.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  async function server(extraArgs: string[]): Promise<EmbeddedNats> {
    const started = await startTestNats({ extraArgs });
    servers.push(started);
    return started;
  }

  it("connects with a user and password, and says why it cannot without them", async () => {
    const nats = await server(["--user", "dmcp", "--pass", "s3cret"]);
    expect((await status(["--nats", nats.url, "--nats-user", "dmcp", "--nats-pass", "s3cret"])).code).toBe(0);
    const refused = await status(["--nats", nats.url]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/cannot connect to NATS/);
  });

  it("connects with a token, from the flag or the environment", async () => {
    const nats = await server(["--auth", "tok-123"]);
    expect((await status(["--nats", nats.url, "--nats-token", "tok-123"])).code).toBe(0);
    const fromEnv = runDmcp(["status", "--json", "--wait", "200", "--nats", nats.url], { env: { DMCP_NATS_TOKEN: "tok-123" } });
    expect(await fromEnv.exited).toBe(0);
    expect((await status(["--nats", nats.url, "--nats-token", "wrong"])).code).toBe(1);
  });

  it("connects with an nkey seed", async () => {
    const user = nkeys.createUser();
    const seedFile = join(dir, "user.nk");
    writeFileSync(seedFile, new TextDecoder().decode(user.getSeed()));
    const config = join(dir, "nkey.conf");
    writeFileSync(config, `authorization { users = [ { nkey: "${user.getPublicKey()}" } ] }\n`);
    const nats = await server(["-c", config]);
    expect((await status(["--nats", nats.url, "--nats-nkey", seedFile])).code).toBe(0);
    expect((await status(["--nats", nats.url])).code).toBe(1);
  });

  it("connects over TLS to a server whose certificate a private CA signed", async () => {
    const file = (name: string) => join(dir, name);
    const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "ignore" });
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", file("ca.key"), "-out", file("ca.pem"), "-days", "1", "-subj", "/CN=dmcp test CA");
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", file("server.key"), "-out", file("server.csr"), "-subj", "/CN=localhost");
    writeFileSync(file("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    openssl(
      "x509",
      "-req",
      "-in",
      file("server.csr"),
      "-CA",
      file("ca.pem"),
      "-CAkey",
      file("ca.key"),
      "-CAcreateserial",
      "-out",
      file("server.pem"),
      "-days",
      "1",
      "-extfile",
      file("san.ext"),
    );
    const nats = await server(["--tls", "--tlscert", file("server.pem"), "--tlskey", file("server.key")]);
    const tlsUrl = nats.url.replace(/^nats:/, "tls:");
    expect((await status(["--nats", tlsUrl, "--nats-tls-ca", file("ca.pem")])).code).toBe(0);
    // Without the CA the server's certificate cannot be trusted.
    expect((await status(["--nats", tlsUrl])).code).toBe(1);
  });

  it("refuses contradictory options as a usage error", async () => {
    expect((await status(["--nats", "nats://127.0.0.1:9", "--nats-creds", "a", "--nats-nkey", "b"])).code).toBe(2);
    expect((await status(["--nats", "nats://127.0.0.1:9", "--nats-tls-cert", "a"])).code).toBe(2);
  });
});

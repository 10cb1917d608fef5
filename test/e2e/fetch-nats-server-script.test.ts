/**
 * scripts/fetch-current-nats-server.sh takes Debian unstable from the Debian mirror the machine's apt
 * sources name (so that it works behind a local mirror): run against an apt configuration whose Debian
 * source is a local HTTP server, it asks that server, and nothing else, for the unstable suite.
 */
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/processes.js";

const hasApt = spawnSync("apt-get", ["--version"]).status === 0;

/** A copy of the script in a scratch repository (it caches under its own .cache/), run with APT_CONFIG. */
function runScript(aptConfig: string): Promise<{ code: number | null; stderr: string }> {
  const repo = mkdtempSync(join(tmpdir(), "dmcp-fetch-script-"));
  scratch.push(repo);
  mkdirSync(join(repo, "scripts"));
  copyFileSync(join(REPO_ROOT, "scripts/fetch-current-nats-server.sh"), join(repo, "scripts/fetch-current-nats-server.sh"));
  const env: NodeJS.ProcessEnv = { ...process.env, APT_CONFIG: aptConfig };
  delete env.DEBIAN_MIRROR;
  const child = spawn("sh", [join(repo, "scripts/fetch-current-nats-server.sh")], { env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stderr })));
}

/** An apt configuration of its own: one source, and the lists apt would have after an update of it. */
function aptConfig(source: { uri: string; label: string }): string {
  const dir = mkdtempSync(join(tmpdir(), "dmcp-apt-"));
  scratch.push(dir);
  mkdirSync(join(dir, "lists", "partial"), { recursive: true });
  mkdirSync(join(dir, "parts"));
  writeFileSync(join(dir, "sources.list"), `deb [trusted=yes] ${source.uri} bookworm main\n`);
  // apt names list files after the URI without its scheme, slashes as underscores.
  const listName = source.uri.replace(/^\w+:\/\//, "").replaceAll("/", "_");
  writeFileSync(
    join(dir, "lists", `${listName}_dists_bookworm_Release`),
    `Origin: Debian\nLabel: ${source.label}\nSuite: stable\nCodename: bookworm\nArchitectures: amd64\nComponents: main\n`,
  );
  writeFileSync(join(dir, "lists", `${listName}_dists_bookworm_main_binary-amd64_Packages`), "");
  const config = join(dir, "apt.conf");
  writeFileSync(config, [`Dir::Etc::sourcelist "${dir}/sources.list";`, `Dir::Etc::sourceparts "${dir}/parts";`, `Dir::State::Lists "${dir}/lists";`, ""].join("\n"));
  return config;
}

const scratch: string[] = [];

describe.runIf(hasApt)("fetch-current-nats-server.sh", () => {
  let mirror: Server;
  let mirrorUri: string;
  const requested: string[] = [];

  beforeAll(async () => {
    mirror = createServer((req, res) => {
      requested.push(req.url ?? "");
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => mirror.listen(0, "127.0.0.1", resolve));
    mirrorUri = `http://127.0.0.1:${(mirror.address() as { port: number }).port}/debian`;
  });

  afterAll(async () => {
    await new Promise((resolve) => mirror?.close(resolve));
    for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
  });

  it("asks the Debian mirror of the apt sources for unstable", async () => {
    const { code } = await runScript(aptConfig({ uri: mirrorUri, label: "Debian" }));
    // The local mirror has no unstable suite, so the script fails, after asking it.
    expect(code).not.toBe(0);
    expect(requested.length).toBeGreaterThan(0);
    expect(requested.every((path) => path.startsWith("/debian/dists/unstable/"))).toBe(true);
  });

  it("says what to set when the apt sources name no Debian archive", async () => {
    requested.length = 0;
    const { code, stderr } = await runScript(aptConfig({ uri: mirrorUri, label: "Ubuntu" }));
    expect(code).toBe(1);
    expect(stderr).toContain("no Debian archive among this machine's apt sources");
    expect(stderr).toContain("DEBIAN_MIRROR");
    expect(requested).toEqual([]);
  });
});

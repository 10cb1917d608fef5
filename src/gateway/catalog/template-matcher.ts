/**
 * Matching URIs against resource templates that any participant on the bus can announce.
 *
 * The SDK's UriTemplate matches with a regular expression, one group per expression: `{a}` becomes
 * `([^/,]+)`, `{+a}` and `{#a}` become `(.+)`. Where a group is followed by something it can also
 * consume (`{a}-{b}`, `{+a}{+b}`), the engine tries every split point when the URI does not match: k
 * such junctions cost about n^(k+1) steps on a URI of n characters. A template like
 * `{+a}{+b}{+c}{+d}{+e}{+f}x` kept a gateway busy for seconds on an 80-character URI, and forever on a
 * longer one. So templates with more than one such junction are not used for matching (they are still
 * listed; their resources can be read by qualified URI), and URIs longer than MAX_MATCHED_URI_LENGTH are
 * not matched against templates at all: with at most one junction, a match costs at most n^2 steps.
 */
import { UriTemplate } from "@modelcontextprotocol/server";

export const MAX_MATCHED_URI_LENGTH = 4096;

/** Characters each operator's group cannot consume (undefined: it consumes everything). */
const STOPS: Record<string, string | undefined> = { "": "/,", "/": "/,", ".": "/,", "?": "&", "&": "&", "+": undefined, "#": undefined };
/** What the regex of an expression starts with, per operator (none: the group itself). */
const PREFIX: Record<string, string> = { "": "", "+": "", "#": "", ".": ".", "/": "/", "?": "?", "&": "&" };

/** A matcher for `template`, or undefined when the template cannot be parsed or could backtrack badly. */
export function templateMatcher(template: string): UriTemplate | undefined {
  let matcher: UriTemplate;
  try {
    matcher = new UriTemplate(template);
  } catch {
    return undefined;
  }
  return junctions(template) <= 1 ? matcher : undefined;
}

/** Whether `uri` may be matched against templates at all. */
export function matchableUri(uri: string): boolean {
  return uri.length <= MAX_MATCHED_URI_LENGTH;
}

/** Counts the places where a group of the template's regex is followed by something it can consume. */
function junctions(template: string): number {
  const parts = template.split(/(\{[^}]*\})/).filter((part) => part !== "");
  let count = 0;
  parts.forEach((part, index) => {
    if (!part.startsWith("{")) return;
    const operator = /^\{([+#./?&]?)/.exec(part)![1]!;
    const next = parts[index + 1];
    if (next === undefined) return;
    const first = next.startsWith("{") ? PREFIX[/^\{([+#./?&]?)/.exec(next)![1]!]!.charAt(0) : next.charAt(0);
    // An exploded list ({a*}, {/a*}) runs on over commas.
    const stops = part.includes("*") && (operator === "" || operator === "/") ? "/" : STOPS[operator];
    if (first === "" || stops === undefined || !stops.includes(first)) count++;
  });
  return count;
}

/** zod's validation issues as one line a person can act on. */
import type * as z from "zod";

/** Renders zod issues as `path: message; path: message`, the path in dotted form. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .flatMap((issue) => explainUnion(issue))
    .map(explainKey)
    .slice(0, 5)
    .map((issue) => `${issue.path.length ? issue.path.join(".") : "(root)"}: ${issue.message}`)
    .join("; ");
}

/** A record key that breaks its rule yields "Invalid key in record": say the rule it breaks instead. */
function explainKey(issue: { path: PropertyKey[]; message: string; code?: string; issues?: readonly { message: string }[] }): { path: PropertyKey[]; message: string } {
  if (issue.code !== "invalid_key" || !issue.issues?.length) return issue;
  return { path: issue.path, message: `invalid name: ${issue.issues.map((inner) => inner.message).join("; ")}` };
}

/**
 * A value that fits no branch of a union yields one vague issue. When one branch is clearly the one
 * meant (fewest issues, then the deepest path), its issues, under the union's path, say exactly what
 * is wrong.
 */
function explainUnion(issue: z.core.$ZodIssue): { path: PropertyKey[]; message: string }[] {
  if (issue.code !== "invalid_union" || !("errors" in issue) || issue.errors.length === 0) return [issue];
  const score = (branch: z.core.$ZodIssue[]) => [branch.length, -Math.max(0, ...branch.map((i) => i.path.length))] as const;
  const ranked = [...issue.errors].sort((a, b) => score(a)[0] - score(b)[0] || score(a)[1] - score(b)[1]);
  const [best, second] = ranked;
  if (!best || best.length === 0) return [issue];
  if (second && score(best)[0] === score(second)[0] && score(best)[1] === score(second)[1]) return [issue];
  return best.flatMap((inner) => explainUnion(inner)).map((inner) => ({ path: [...issue.path, ...inner.path], message: inner.message }));
}

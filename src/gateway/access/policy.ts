/**
 * Per-identity authorization of tools, resources and prompts. A policy is a list of rules; a rule
 * applies to the callers its `match` selects and allows or denies items by glob patterns. A deny of
 * any applying rule wins over an allow; an item no applying rule mentions gets the policy's default.
 */
import * as z from "zod";
import { formatIssues } from "../../protocol/index.js";

/** Who sends a session's requests, as the inbound adapter established it. */
export interface Identity {
  /** `token` (a static bearer token), `jwt`, `local` (a stdio client), `nostr` (a Nostr client) or `anonymous` (an open HTTP gateway). */
  kind: "token" | "jwt" | "local" | "nostr" | "anonymous";
  /** The token's name, the JWT's `sub`, the local identity, or the Nostr client's public key (hex). */
  subject: string;
  claims?: Record<string, unknown>;
  /** The raw bearer token; kept in memory for `forwardToken` only, never logged. */
  token?: string;
}

export const ANONYMOUS: Identity = { kind: "anonymous", subject: "anonymous" };

const Patterns = z.array(z.string().min(1)).describe('glob patterns: "*" matches any run of characters, "?" one');

const Grants = z.strictObject({
  tools: Patterns.optional().describe("tool names as clients see them, or <service>/<tool>"),
  resources: Patterns.optional().describe("resource URIs and URI templates as clients see them, or <service>/<uri>"),
  prompts: Patterns.optional().describe("prompt names as clients see them, or <service>/<prompt>"),
});

const Rule = z.strictObject({
  description: z.string().optional(),
  match: z
    .strictObject({
      kinds: z
        .array(z.enum(["token", "jwt", "local", "nostr", "anonymous"]))
        .optional()
        .describe("how the caller authenticated"),
      subjects: Patterns.optional().describe("token names, JWT subjects, the local identity or Nostr public keys (hex)"),
      claims: z
        .record(z.string(), z.union([z.string(), z.array(z.string())]))
        .optional()
        .describe("JWT claims (dotted paths) and the values any of which they must hold; arrays and scope strings match by member"),
    })
    .default({})
    .describe("every condition given must hold; an empty match applies to everyone"),
  allow: Grants.optional(),
  deny: Grants.optional(),
});

export const PolicySchema = z.strictObject({
  $schema: z.string().optional(),
  default: z.enum(["allow", "deny"]).default("deny").describe("for items no applying rule allows or denies"),
  rules: z.array(Rule).default([]),
});
export type PolicyConfig = z.input<typeof PolicySchema>;

export type ItemKind = "tools" | "resources" | "prompts";

/** The item a request uses, by the names a policy may match (as exposed, and as <service>/<upstream name>). */
export interface PolicyTarget {
  kind: ItemKind;
  names: string[];
}

/** What one identity may use. `names` are the forms an item is known by (exposed name, service/target). */
export interface Access {
  allows(kind: ItemKind, names: readonly string[]): boolean;
}

export const ALLOW_ALL: Access = { allows: () => true };

export class AccessPolicy {
  private readonly config: z.output<typeof PolicySchema>;
  private readonly compiled: { applies: (identity: Identity) => boolean; allow: Matchers; deny: Matchers }[];

  constructor(config: PolicyConfig, source = "policy") {
    const parsed = PolicySchema.safeParse(config);
    if (!parsed.success) throw new Error(`invalid ${source}: ${formatIssues(parsed.error.issues)}`);
    this.config = parsed.data;
    this.compiled = this.config.rules.map((rule) => ({
      applies: matcherOf(rule.match),
      allow: compileGrants(rule.allow),
      deny: compileGrants(rule.deny),
    }));
  }

  /** The access of one identity (compute once per identity, then ask it per item). */
  accessFor(identity: Identity): Access {
    const rules = this.compiled.filter((rule) => rule.applies(identity));
    const allowByDefault = this.config.default === "allow";
    return {
      allows(kind, names) {
        const hit = (matchers: Matchers) => names.some((name) => matchers[kind].some((pattern) => pattern.test(name)));
        if (rules.some((rule) => hit(rule.deny))) return false;
        return rules.some((rule) => hit(rule.allow)) || allowByDefault;
      },
    };
  }
}

type Matchers = Record<ItemKind, RegExp[]>;

function compileGrants(grants: z.output<typeof Grants> | undefined): Matchers {
  return {
    tools: (grants?.tools ?? []).map(globToRegExp),
    resources: (grants?.resources ?? []).map(globToRegExp),
    prompts: (grants?.prompts ?? []).map(globToRegExp),
  };
}

export function globToRegExp(pattern: string): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${body}$`, "s");
}

function matcherOf(match: z.output<typeof Rule>["match"]): (identity: Identity) => boolean {
  const subjects = match.subjects?.map(globToRegExp);
  const claims = Object.entries(match.claims ?? {}).map(([path, wanted]) => ({ path, wanted: Array.isArray(wanted) ? wanted : [wanted] }));
  return (identity) =>
    (!match.kinds || match.kinds.includes(identity.kind)) &&
    (!subjects || subjects.some((pattern) => pattern.test(identity.subject))) &&
    claims.every(({ path, wanted }) => claimHolds(claimAt(identity.claims, path), path, wanted));
}

function claimAt(claims: Record<string, unknown> | undefined, path: string): unknown {
  if (claims && path in claims) return claims[path];
  let value: unknown = claims;
  for (const key of path.split(".")) {
    if (typeof value !== "object" || value === null || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function claimHolds(actual: unknown, path: string, wanted: string[]): boolean {
  if (Array.isArray(actual)) return actual.some((member) => wanted.includes(String(member)));
  if (typeof actual === "string") {
    // OAuth scopes are one space-separated string (RFC 8693 `scope`, Azure's `scp`).
    const members = path === "scope" || path === "scp" ? actual.split(" ") : [actual];
    return members.some((member) => wanted.includes(member));
  }
  if (typeof actual === "number" || typeof actual === "boolean") return wanted.includes(String(actual));
  return false;
}

/** Who may use what, and what of the caller travels with each request: options of the gateway at every level. */
export interface CallerAccess {
  /** Who may use which tools, resources and prompts; everyone may use everything without it. */
  policy?: AccessPolicy | undefined;
  /** JWT claims copied into each request's `caller` (the subject and issuer always are). */
  forwardClaims?: string[] | undefined;
  /** Put the caller's raw bearer token in each request's `caller` (off by default). */
  forwardToken?: boolean | undefined;
}

/** The CallerAccess part of a larger options object, to hand on to the next level. */
export function callerAccess(options: CallerAccess): CallerAccess {
  return { policy: options.policy, forwardClaims: options.forwardClaims, forwardToken: options.forwardToken };
}

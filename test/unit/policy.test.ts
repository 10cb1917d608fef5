/** The policy's rule semantics, in-process: globs, deny over allow, claims, defaults, and its errors. */
import { describe, expect, it } from "vitest";
import { AccessPolicy, globToRegExp, type Identity } from "../../src/gateway/access/policy.js";

const alice: Identity = { kind: "token", subject: "alice" };
const jwt = (claims: Record<string, unknown>): Identity => ({ kind: "jwt", subject: "carol", claims });

describe("access policy", () => {
  it("matches globs over whole names: * any run (slashes too), ? one character, the rest literal", () => {
    expect(globToRegExp("files/*").test("files/a/b")).toBe(true);
    expect(globToRegExp("files/*").test("xfiles/a")).toBe(false);
    expect(globToRegExp("a?c").test("abc")).toBe(true);
    expect(globToRegExp("a.c").test("abc")).toBe(false);
    expect(globToRegExp("fixture://x/{id}").test("fixture://x/{id}")).toBe(true);
  });

  it("lets a deny of any applying rule win over an allow, and falls back to the default", () => {
    const policy = new AccessPolicy({
      rules: [
        { match: {}, allow: { tools: ["*"] } },
        { match: { subjects: ["alice"] }, deny: { tools: ["danger*"] } },
      ],
    });
    const access = policy.accessFor(alice);
    expect(access.allows("tools", ["safe"])).toBe(true);
    expect(access.allows("tools", ["danger_zone"])).toBe(false);
    expect(access.allows("prompts", ["any"])).toBe(false);
    expect(policy.accessFor({ kind: "token", subject: "bob" }).allows("tools", ["danger_zone"])).toBe(true);
    const open = new AccessPolicy({ default: "allow", rules: [{ match: {}, deny: { resources: ["secret://*"] } }] }).accessFor(alice);
    expect(open.allows("prompts", ["any"])).toBe(true);
    expect(open.allows("resources", ["secret://x"])).toBe(false);
  });

  it("checks every name an item is known by (as exposed, and as service/target)", () => {
    const access = new AccessPolicy({ rules: [{ match: {}, allow: { tools: ["github/*"] } }] }).accessFor(alice);
    expect(access.allows("tools", ["create_issue", "github/create_issue"])).toBe(true);
    expect(access.allows("tools", ["create_issue", "gitlab/create_issue"])).toBe(false);
  });

  it("matches claims: exact strings, array members, dotted paths and space-separated scopes", () => {
    const policy = new AccessPolicy({
      rules: [
        { match: { kinds: ["jwt"], claims: { roles: ["admin", "ops"] } }, allow: { tools: ["admin_*"] } },
        { match: { claims: { "realm_access.roles": "reader" } }, allow: { resources: ["*"] } },
        { match: { claims: { scope: "tools:write", tenant: "acme" } }, allow: { tools: ["write_*"] } },
      ],
    });
    expect(policy.accessFor(jwt({ roles: ["dev", "ops"] })).allows("tools", ["admin_x"])).toBe(true);
    expect(policy.accessFor(jwt({ roles: "ops" })).allows("tools", ["admin_x"])).toBe(true);
    expect(policy.accessFor(jwt({ roles: ["dev"] })).allows("tools", ["admin_x"])).toBe(false);
    expect(policy.accessFor({ kind: "token", subject: "ops", claims: { roles: ["ops"] } }).allows("tools", ["admin_x"])).toBe(false);
    expect(policy.accessFor(jwt({ realm_access: { roles: ["reader"] } })).allows("resources", ["file:///a"])).toBe(true);
    expect(policy.accessFor(jwt({ scope: "tools:read tools:write", tenant: "acme" })).allows("tools", ["write_x"])).toBe(true);
    expect(policy.accessFor(jwt({ scope: "tools:write", tenant: "other" })).allows("tools", ["write_x"])).toBe(false);
    expect(policy.accessFor(jwt({ scope: "tools:writer", tenant: "acme" })).allows("tools", ["write_x"])).toBe(false);
  });

  it("refuses a policy with a clear path for each problem", () => {
    expect(() => new AccessPolicy({ default: "maybe" } as never, "policy p.json")).toThrow(/invalid policy p\.json: .*default/);
    expect(() => new AccessPolicy({ rules: [{ allow: { tool: ["x"] } }] } as never)).toThrow(/rules\.0\.allow/);
    expect(() => new AccessPolicy({ rules: [{ match: { claims: { roles: 3 } } }] } as never)).toThrow(/rules\.0\.match\.claims\.roles/);
  });
});

/**
 * Resource templates come from announcements anyone on the bus can make: the gateway must not let one
 * of them make it match URIs by backtracking for ever (found with the fuzz harness, bench/fuzz/).
 */
import { describe, expect, it } from "vitest";
import { AggregatedCatalog, type ServiceCatalog } from "../../src/gateway/catalog/catalog.js";
import { matchableUri, MAX_MATCHED_URI_LENGTH, templateMatcher } from "../../src/gateway/catalog/template-matcher.js";

function catalogWith(templates: Record<string, string[]>): AggregatedCatalog {
  const catalogs = new Map<string, ServiceCatalog>(
    Object.entries(templates).map(([service, uriTemplates]) => [
      service,
      { catalog: { tools: [], resources: [], prompts: [], resource_templates: uriTemplates.map((uriTemplate) => ({ uriTemplate })) }, capabilities: { resources: {} } },
    ]),
  );
  return new AggregatedCatalog(catalogs);
}

describe("resource template matching", () => {
  it("matches the templates servers write", () => {
    for (const [template, uri] of [
      ["file:///{path}", "file:///notes"],
      ["repo://{owner}/{repo}/contents{/path*}", "repo://a/b/contents/src,lib"],
      ["{+path}", "anything/at/all"],
      ["db://{table}.{id}", "db://users.42"],
      ["search{?q,lang}", "search?q=x&lang=en"],
      ["fixture://fz/items/{id}", "fixture://fz/items/7"],
    ] as const) {
      expect(templateMatcher(template)?.match(uri), template).toBeTruthy();
    }
  });

  it("does not use a template whose matcher could backtrack on every split of the URI", () => {
    for (const template of ["{+a}{+b}{+c}{+d}{+e}{+f}x", "{a}-{b}-{c}", "{#a}{b}{.c}", "{i*},{j*},x"]) {
      expect(templateMatcher(template), template).toBeUndefined();
    }
  });

  it("answers a read while such a template is announced, at once (it used to take seconds to hours)", () => {
    const catalog = catalogWith({ evil: ["{+a}{+b}{+c}{+d}{+e}{+f}x"], good: ["good://{id}"] });
    expect(catalog.resource("y".repeat(200))).toBeUndefined();
    expect(catalog.resource("good://7")).toEqual({ service: "good", target: "good://7" });
  });

  it("matches no template against a URI over the length limit", () => {
    expect(matchableUri("x".repeat(MAX_MATCHED_URI_LENGTH))).toBe(true);
    expect(matchableUri("x".repeat(MAX_MATCHED_URI_LENGTH + 1))).toBe(false);
    const catalog = catalogWith({ one: ["{+all}"], two: ["two://{id}"] });
    expect(catalog.resource("z".repeat(MAX_MATCHED_URI_LENGTH + 1))).toBeUndefined();
  });
});

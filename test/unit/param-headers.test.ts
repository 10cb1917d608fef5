/** `Mcp-Param-*` header rules (SEP-2243), in-process: declarations, encoding, and the server-side check. */
import { describe, expect, it } from "vitest";
import { decodeParamValue, encodeParamValue, paramHeaderMismatch, paramHeadersOf, paramHeaderValues } from "../../src/protocol/index.js";

const SCHEMA = {
  type: "object",
  properties: {
    region: { type: "string", "x-mcp-header": "Region" },
    priority: { type: "integer", "x-mcp-header": "Priority" },
    verbose: { type: "boolean", "x-mcp-header": "Verbose" },
    nested: { type: "object", properties: { zone: { type: "string", "x-mcp-header": "Zone" } } },
    bad: { type: "string", "x-mcp-header": "Not A Token" },
    query: { type: "string" },
  },
};

describe("Mcp-Param headers", () => {
  it("finds the x-mcp-header arguments along properties, skipping names that are not header tokens", () => {
    expect(paramHeadersOf(SCHEMA).map((param) => [param.path.join("."), param.name])).toEqual([
      ["region", "Region"],
      ["priority", "Priority"],
      ["verbose", "Verbose"],
      ["nested.zone", "Zone"],
    ]);
    expect(paramHeadersOf(undefined)).toEqual([]);
  });

  it("encodes printable ASCII plainly and everything else as =?base64?...?=", () => {
    expect(encodeParamValue("eu-west 1")).toBe("eu-west 1");
    expect(encodeParamValue(42)).toBe("42");
    expect(encodeParamValue(false)).toBe("false");
    for (const value of [" lead", "trail ", "Zürich", "a\r\nb", "\ttab", "=?base64?SGk=?="]) {
      const encoded = encodeParamValue(value)!;
      expect(encoded, value).toMatch(/^=\?base64\?[A-Za-z0-9+/=]*\?=$/);
      expect(decodeParamValue(encoded), value).toBe(value);
    }
    expect(encodeParamValue(null)).toBeUndefined();
    expect(encodeParamValue({ a: 1 })).toBeUndefined();
  });

  it("builds the headers a client sends, none for absent or null arguments", () => {
    expect(paramHeaderValues(paramHeadersOf(SCHEMA), { region: "eu", priority: 3, verbose: null, nested: { zone: "b" }, query: "q" })).toEqual({
      "Mcp-Param-Region": "eu",
      "Mcp-Param-Priority": "3",
      "Mcp-Param-Zone": "b",
    });
  });

  it("accepts what a client builds and rejects missing, malformed and different headers", () => {
    const declared = paramHeadersOf(SCHEMA);
    const args = { region: "Zürich", priority: 42 };
    const sent = paramHeaderValues(declared, args);
    const reader = (headers: Record<string, string>) => (name: string) => Object.entries(headers).find(([key]) => key.toLowerCase() === name.toLowerCase())?.[1];
    expect(paramHeaderMismatch(declared, args, reader(sent))).toBeUndefined();
    expect(paramHeaderMismatch(declared, args, reader({ ...sent, "Mcp-Param-Priority": "42.0" }))).toBeUndefined();
    expect(paramHeaderMismatch(declared, args, reader({ "Mcp-Param-Priority": "42" }))).toContain("Missing Mcp-Param-Region");
    expect(paramHeaderMismatch(declared, args, reader({ ...sent, "Mcp-Param-Region": "=?base64?WsO8cmljaA?=" }))).toContain("not valid Base64");
    expect(paramHeaderMismatch(declared, args, reader({ ...sent, "Mcp-Param-Region": "=?base64?WsO8!!!?=" }))).toContain("not valid Base64");
    expect(paramHeaderMismatch(declared, args, reader({ ...sent, "Mcp-Param-Priority": "41" }))).toContain("does not match");
    // A value that only looks like the Base64 form is literal.
    expect(paramHeaderMismatch(declared, { region: "=?base64?x" }, reader({ "Mcp-Param-Region": "=?base64?x" }))).toBeUndefined();
  });
});

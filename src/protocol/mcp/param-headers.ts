/**
 * `Mcp-Param-<Name>` headers (MCP 2026-07-28, SEP-2243): a tool's inputSchema may mark an argument
 * with `x-mcp-header: <Name>` so that HTTP intermediaries can route on it without reading the body.
 * A client mirrors the argument's value into the header; a server rejects a request whose header is
 * missing, malformed or different from the body's value.
 */

export const PARAM_HEADER_PREFIX = "Mcp-Param-";

/** One argument that a tool mirrors into a header. */
export interface ParamHeader {
  /** Where the argument sits in `arguments` (nested objects' `properties` chain). */
  path: string[];
  /** The header name's suffix, as declared. */
  name: string;
  /** The argument's declared JSON Schema type. */
  type: string | undefined;
}

/** RFC 9110 token characters: what a header name may be made of. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BASE64_PREFIX = "=?base64?";
const BASE64_SUFFIX = "?=";
const CANONICAL_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The header-mirrored arguments of a tool, following `properties` only (the places the revision allows). */
export function paramHeadersOf(inputSchema: unknown): ParamHeader[] {
  const found: ParamHeader[] = [];
  const visit = (schema: unknown, path: string[]): void => {
    if (typeof schema !== "object" || schema === null) return;
    const node = schema as Record<string, unknown>;
    const name = node["x-mcp-header"];
    if (path.length > 0 && typeof name === "string" && TOKEN.test(name)) found.push({ path, name, type: typeof node.type === "string" ? node.type : undefined });
    const properties = node.properties;
    if (typeof properties !== "object" || properties === null) return;
    for (const [key, child] of Object.entries(properties)) visit(child, [...path, key]);
  };
  visit(inputSchema, []);
  return found;
}

/** The header value for an argument: plain when it is printable ASCII without edge spaces, Base64 otherwise. */
export function encodeParamValue(value: unknown): string | undefined {
  const text = primitiveText(value);
  if (text === undefined) return undefined;
  const plain = /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(text) && !(text.startsWith(BASE64_PREFIX) && text.endsWith(BASE64_SUFFIX));
  return plain ? text : `${BASE64_PREFIX}${Buffer.from(text, "utf8").toString("base64")}${BASE64_SUFFIX}`;
}

/** A header value as the client meant it: Base64 decoded, or undefined when the Base64 form is invalid. */
export function decodeParamValue(value: string): string | undefined {
  if (!(value.startsWith(BASE64_PREFIX) && value.endsWith(BASE64_SUFFIX) && value.length >= BASE64_PREFIX.length + BASE64_SUFFIX.length)) return value;
  const encoded = value.slice(BASE64_PREFIX.length, value.length - BASE64_SUFFIX.length);
  if (!CANONICAL_BASE64.test(encoded)) return undefined;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(encoded, "base64"));
  } catch {
    return undefined;
  }
}

/** The `Mcp-Param-*` headers a client sends for these arguments (none for absent or null values). */
export function paramHeaderValues(declared: readonly ParamHeader[], args: unknown): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const param of declared) {
    const value = encodeParamValue(valueAt(args, param.path));
    if (value !== undefined) headers[`${PARAM_HEADER_PREFIX}${param.name}`] = value;
  }
  return headers;
}

/**
 * Why the request's headers disagree with its arguments, or undefined when they agree. `header` reads
 * one request header by name (case-insensitively, without surrounding whitespace). A header whose
 * argument is absent or null is not checked.
 */
export function paramHeaderMismatch(declared: readonly ParamHeader[], args: unknown, header: (name: string) => string | undefined): string | undefined {
  for (const param of declared) {
    const body = valueAt(args, param.path);
    const expected = primitiveText(body);
    if (expected === undefined) continue;
    const name = `${PARAM_HEADER_PREFIX}${param.name}`;
    const raw = header(name);
    if (raw === undefined) return `Missing ${name} header: arguments.${param.path.join(".")} is ${JSON.stringify(body)}`;
    const decoded = decodeParamValue(raw);
    if (decoded === undefined) return `${name} header is not valid Base64 (=?base64?...?=)`;
    const numeric = typeof body === "number" && /^-?\d+(\.\d+)?$/.test(decoded);
    if (numeric ? Number(decoded) !== body : decoded !== expected) return `${name} header does not match arguments.${param.path.join(".")}`;
  }
  return undefined;
}

function primitiveText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  return undefined;
}

function valueAt(root: unknown, path: readonly string[]): unknown {
  let node = root;
  for (const key of path) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

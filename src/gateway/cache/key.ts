/**
 * The key of a cached answer: the service, the method and its tool, prompt or URI, the canonical JSON
 * of the rest of the params (`_meta` left out: progress tokens and trace context change per request),
 * and the caller's identity unless the answer is shared. Keys are `<service>.<target>.<entry>`
 * (hashes, so that any name or URI makes a valid KV key), and a purge by service or target is a
 * purge by prefix.
 */
import { hash as digest } from "node:crypto";
import type { CacheScope } from "../../protocol/index.js";
import type { Identity } from "../access/policy.js";

export interface CacheKeys {
  service: string;
  /** `<service>.<target>`: every entry of one tool, prompt or URI of the service. */
  target: string;
  /** The entry only the same caller may get. */
  private: string;
  /** The entry every caller may get. */
  public: string;
}

/** The keys of a call to `service` with these (upstream) params, by the calling identity; each entry key is hashed when first read. */
export function cacheKeysOf(service: string, method: string, params: Record<string, unknown>, identity: Identity, revision: string): CacheKeys {
  const target = `${service}.${targetHash(method, targetOf(method, params))}`;
  const args = canonicalJson(withoutMeta(params));
  // A call with an announced rule needs the key of its scope only.
  let privateKey: string | undefined;
  let publicKey: string | undefined;
  return {
    service,
    target,
    get private() {
      privateKey ??= `${target}.${hash(`${revision}\n${identity.kind}\n${identity.subject}\n${args}`)}`;
      return privateKey;
    },
    get public() {
      publicKey ??= `${target}.${hash(`${revision}\n\n\n${args}`)}`;
      return publicKey;
    },
  };
}

export function keyOfScope(keys: CacheKeys, scope: CacheScope): string {
  return scope === "public" ? keys.public : keys.private;
}

/** The target part of the keys of a resource's answers (what `notifications/resources/updated` drops). */
export function resourceTarget(service: string, uri: string): string {
  return `${service}.${targetHash("resources/read", uri)}`;
}

/** JSON with object keys sorted at every depth: equal values, equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item ?? null)).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const record = value as Record<string, unknown>;
    const fields = Object.keys(record)
      .filter((key) => record[key] !== undefined)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`);
    return `{${fields.join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

function targetOf(method: string, params: Record<string, unknown>): string {
  if (method === "tools/call" || method === "prompts/get") return String(params.name ?? "");
  if (method === "resources/read") return String(params.uri ?? "");
  return "";
}

function targetHash(method: string, target: string): string {
  return hash(`${method}\n${target}`).slice(0, 24);
}

function hash(text: string): string {
  // One-shot: no Hash object per key.
  return digest("sha256", text, "base64url").slice(0, 43);
}

function withoutMeta(params: Record<string, unknown>): Record<string, unknown> {
  if (!("_meta" in params)) return params;
  const { _meta: _dropped, ...rest } = params;
  return rest;
}

/**
 * Authentication of the HTTP gateway, as an OAuth 2.0 resource server (MCP's authorization spec):
 * static bearer tokens (compared in constant time) and JWTs verified against a key or a JWKS (issuer,
 * audience, expiry). Unauthenticated requests get 401 with `WWW-Authenticate` naming the protected
 * resource metadata (RFC 9728), which is served at `/.well-known/oauth-protected-resource`.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { createLocalJWKSet, createRemoteJWKSet, importSPKI, jwtVerify, type CryptoKey, type JWTVerifyGetKey } from "jose";
import type { Identity } from "../../../../src/gateway/index.js";
import { sendJson } from "./errors.js";
import type { AsyncRequestGate } from "./gate.js";

export interface AuthOptions {
  /** Static tokens by name (the name is the caller's identity); a `StaticTokens` may be replaced later, and may be empty. */
  tokens?: Record<string, string> | StaticTokens;
  jwt?: {
    /** A JWKS URL (fetched and cached), or a JWKS document, or a PEM public key (SPKI). */
    jwksUrl?: string;
    jwks?: { keys: unknown[] };
    publicKeyPem?: string;
    /** Accepted `alg` for a PEM key. */
    algorithm?: string;
    issuer?: string;
    audience?: string;
  };
  /** Authorization servers announced in the protected resource metadata. */
  authorizationServers?: string[];
}

export type { Identity };

export class AuthError extends Error {
  readonly code = "UNAUTHORIZED";
  constructor(
    message: string,
    /** RFC 6750 error code for WWW-Authenticate: absent when no credentials were sent. */
    readonly bearerError?: "invalid_token" | "invalid_request",
  ) {
    super(message);
    this.name = "AuthError";
  }
}

export type Authenticate = (authorization: string | undefined) => Promise<Identity>;

/** Reads `name:token` lines (or comma-separated pairs from an environment variable). */
export function parseTokens(text: string): Record<string, string> {
  const tokens: [string, string][] = [];
  for (const [index, raw] of text.split(/[\n,]/).entries()) {
    const entry = raw.trim();
    if (!entry || entry.startsWith("#")) continue;
    const colon = entry.indexOf(":");
    // Its text is not shown: a line without its name may well be a bare token.
    if (colon <= 0 || colon === entry.length - 1) throw new Error(`token entry ${index + 1} (a line, or an item between commas) must read name:token`);
    tokens.push([entry.slice(0, colon).trim(), entry.slice(colon + 1).trim()]);
  }
  return Object.fromEntries(tokens);
}

export function readTokensFile(path: string): Record<string, string> {
  return parseTokens(readFileSync(path, "utf8"));
}

// Digests of equal length, so that comparing them takes the same time whatever the token.
const digest = (value: string) => createHash("sha256").update(value).digest();

/** The static tokens, replaced as a whole when their file is reloaded: each request sees the set of the moment. */
export class StaticTokens {
  private entries: { name: string; digest: Buffer }[] = [];

  constructor(tokens: Record<string, string> = {}) {
    this.replace(tokens);
  }

  replace(tokens: Record<string, string>): void {
    this.entries = Object.entries(tokens).map(([name, token]) => ({ name, digest: digest(token) }));
  }

  has(name: string): boolean {
    return this.entries.some((entry) => entry.name === name);
  }

  get size(): number {
    return this.entries.length;
  }

  /** The name of `token`, compared in constant time against every entry. */
  nameOf(token: string): string | undefined {
    const presented = digest(token);
    let found: string | undefined;
    for (const candidate of this.entries) if (timingSafeEqual(candidate.digest, presented)) found = candidate.name;
    return found;
  }
}

export async function createAuthenticator(options: AuthOptions): Promise<Authenticate> {
  const replaceable = options.tokens instanceof StaticTokens;
  const staticTokens = options.tokens instanceof StaticTokens ? options.tokens : new StaticTokens(options.tokens);
  const verifyJwt = options.jwt ? await jwtVerifier(options.jwt) : undefined;
  if (!replaceable && staticTokens.size === 0 && !verifyJwt) throw new Error("authentication needs at least one token or a JWT key");

  return async (authorization) => {
    if (!authorization) throw new AuthError("authentication required: send Authorization: Bearer <token>");
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match) throw new AuthError("the Authorization header must read Bearer <token>", "invalid_request");
    const token = match[1]!;
    const found = staticTokens.nameOf(token);
    if (found) return { kind: "token", subject: found, token };
    if (verifyJwt && token.split(".").length === 3) return verifyJwt(token);
    throw new AuthError("the token is not valid", "invalid_token");
  };
}

async function jwtVerifier(jwt: NonNullable<AuthOptions["jwt"]>): Promise<(token: string) => Promise<Identity>> {
  let key: JWTVerifyGetKey | CryptoKey;
  if (jwt.jwksUrl) key = createRemoteJWKSet(new URL(jwt.jwksUrl));
  else if (jwt.jwks) key = createLocalJWKSet(jwt.jwks as Parameters<typeof createLocalJWKSet>[0]);
  else if (jwt.publicKeyPem) key = await importSPKI(jwt.publicKeyPem, jwt.algorithm ?? "RS256");
  else throw new Error("JWT verification needs a JWKS URL, a JWKS or a public key");
  return async (token) => {
    try {
      const { payload } = await jwtVerify(token, key as JWTVerifyGetKey, {
        ...(jwt.issuer ? { issuer: jwt.issuer } : {}),
        ...(jwt.audience ? { audience: jwt.audience } : {}),
        requiredClaims: ["exp"],
      });
      return { kind: "jwt", subject: typeof payload.sub === "string" ? payload.sub : "(no subject)", claims: payload, token };
    } catch (err) {
      // jose's message says what failed (expired, audience, signature); it reveals nothing secret.
      throw new AuthError(`the token is not valid: ${(err as Error).message}`, "invalid_token");
    }
  };
}

/** The RFC 9728 metadata document of the MCP endpoint at `resource`. */
export function protectedResourceMetadata(resource: string, authorizationServers: string[]): Record<string, unknown> {
  return { resource, authorization_servers: authorizationServers, bearer_methods_supported: ["header"], resource_name: "dmcp-gateway" };
}

type AuthenticatedRequest = IncomingMessage & { identity?: Identity };

/** Who sent a request, as requireAuth found out; undefined on an open gateway. */
export function authenticatedIdentity(req: IncomingMessage): Identity | undefined {
  return (req as AuthenticatedRequest).identity;
}

/** Authenticates the request (its identity is then authenticatedIdentity's), or answers 401 with the right headers. */
export function requireAuth(authenticate: Authenticate, metadataUrl: (req: IncomingMessage) => string): AsyncRequestGate {
  return (req, res) =>
    authenticate(req.headers.authorization).then(
      (identity) => {
        (req as AuthenticatedRequest).identity = identity;
        return true;
      },
      (err: unknown) => {
        const error = err instanceof AuthError ? err : new AuthError("authentication failed", "invalid_token");
        const params = [`realm="dmcp-gateway"`, `resource_metadata="${metadataUrl(req)}"`];
        if (error.bearerError) params.push(`error="${error.bearerError}"`, `error_description="${error.message.replace(/["\\]/g, "'")}"`);
        res.setHeader("WWW-Authenticate", `Bearer ${params.join(", ")}`);
        sendJson(res, 401, { jsonrpc: "2.0", id: null, error: { code: -32001, message: error.message } });
        return false;
      },
    );
}

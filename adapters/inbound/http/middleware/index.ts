export {
  AuthError,
  authenticatedIdentity,
  createAuthenticator,
  parseTokens,
  protectedResourceMetadata,
  readTokensFile,
  requireAuth,
  StaticTokens,
  type Authenticate,
  type AuthOptions,
  type Identity,
} from "./auth.js";
export { allowsOrigin, cors } from "./cors.js";
export { parseRateLimit, rateLimiter, type RateLimit } from "./rate-limit.js";
export { isLoopbackHost, loopbackGuard } from "./loopback-guard.js";
export { jsonRpcErrors, sendJson, sendRpcError } from "./errors.js";
export { asAsyncMiddleware, asMiddleware, type AsyncRequestGate, type RequestGate } from "./gate.js";

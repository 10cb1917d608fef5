export { serveHttp, type HttpGatewayServer, type HttpServeOptions } from "./app.js";
export { HTTP_TIMEOUTS, type HttpTimeouts } from "./server.js";
export { followTokensFile, type TokensFile } from "./tokens-file.js";
export {
  AuthError,
  createAuthenticator,
  parseRateLimit,
  parseTokens,
  protectedResourceMetadata,
  readTokensFile,
  StaticTokens,
  type Authenticate,
  type AuthOptions,
  type Identity,
  type RateLimit,
} from "./middleware/index.js";

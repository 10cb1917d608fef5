export { serveStdio, LineStdioServerTransport } from "./stdio.js";
export { serveHttp, HTTP_TIMEOUTS, type HttpGatewayServer, type HttpServeOptions, type HttpTimeouts } from "./http.js";
export { createAuthenticator, parseTokens, readTokensFile, protectedResourceMetadata, AuthError, type Authenticate, type Identity, type AuthOptions } from "./auth.js";

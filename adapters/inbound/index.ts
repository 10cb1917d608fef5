export { serveStdio, LineStdioServerTransport } from "./stdio/stdio.js";
export { serveHttp, HTTP_TIMEOUTS, type HttpGatewayServer, type HttpServeOptions, type HttpTimeouts } from "./http/http.js";
export { createAuthenticator, parseTokens, readTokensFile, protectedResourceMetadata, AuthError, type Authenticate, type Identity, type AuthOptions } from "./http/auth.js";

export { serveStdio, LineStdioServerTransport } from "./stdio.js";
export { serveHttp, type HttpGatewayServer, type HttpServeOptions } from "./http.js";
export { createAuthenticator, parseTokens, readTokensFile, protectedResourceMetadata, AuthError, type Authenticate, type Identity, type AuthOptions } from "./auth.js";

export { serveStdio, LineStdioServerTransport } from "./stdio.js";
export { serveHttp, type HttpGatewayServer, type HttpServeOptions } from "./http.js";

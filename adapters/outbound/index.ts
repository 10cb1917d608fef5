export { stdioConnector, type StdioServerSpec } from "./stdio/stdio.js";
export { httpConnector, type HttpServerSpec } from "./http/http.js";

export { stdioConnector, type StdioServerSpec } from "./stdio.js";
export { httpConnector, type HttpServerSpec } from "./http.js";

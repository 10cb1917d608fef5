export { stdioConnector, type StdioServerSpec } from "./connector.js";

export { httpConnector, type HttpServerSpec } from "./connector.js";

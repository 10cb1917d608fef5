export { nostrConnector, type NostrServerSpec } from "./connector.js";

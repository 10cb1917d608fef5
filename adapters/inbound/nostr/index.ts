export { serveNostr, type NostrGatewayServer, type NostrServeOptions } from "./server.js";

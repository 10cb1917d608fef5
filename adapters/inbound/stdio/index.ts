export { DEFAULT_MAX_LINE_BYTES, LineStdioServerTransport, serveStdio } from "./stdio.js";

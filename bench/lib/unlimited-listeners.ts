/**
 * Imported for its effect. Node's fetch ties each request to the MCP client session's AbortSignal with
 * a listener it removes only when the request is garbage-collected; thousands of calls on one session
 * outrun the collector and the limit of 1500 (a MaxListenersExceededWarning per call past it, thousands
 * of lines of noise). New signals get no limit.
 */
import { EventEmitter } from "node:events";

EventEmitter.defaultMaxListeners = 0;

/** Small helpers every folder shares: the pino logger, text excerpts for error messages, pauses, stopping a child process, JSON off the bus, one timer for many deadlines. */
export { excerpt } from "./excerpt.js";
export { createLogger, type Logger, silentLogger } from "./logger.js";
export { abortableSleep, sleep } from "./sleep.js";
export { DEFAULT_STOP_GRACE_MS, terminate } from "./terminate.js";
export { isJsonObject, jsonObjectOf } from "./json.js";
export { DeadlineSweep } from "./deadline-sweep.js";

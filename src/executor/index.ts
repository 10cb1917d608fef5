export * from "./executor.js";
export * from "./connector.js";
export * from "./supervisor.js";
export * from "./upstream.js";
export { fetchCatalog } from "./catalog.js";
export * from "./delivery-plan.js";

export * from "./executor.js";
export * from "./upstream/connector.js";
export * from "./upstream/supervisor.js";
export * from "./upstream/upstream.js";
export { fetchCatalog } from "./upstream/catalog.js";
export * from "../bus/durable/delivery-plan.js";

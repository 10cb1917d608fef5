/**
 * The live dashboard of the HTTP gateway: its routes and page (routes.ts, page.ts), its model
 * (monitor.ts), and what feeds the model from the bus (traffic-tap.ts, envelope-scanner.ts).
 */
export { DASHBOARD_PATH, mountDashboard, type Dashboard, type DashboardOptions } from "./routes.js";
export {
  GatewayMonitor,
  type CallView,
  type Counters,
  type DashboardState,
  type ErrorEntry,
  type GatewayStatus,
  type MonitorOptions,
  type MonitorUpdate,
  type ReplicaView,
  type ServiceView,
  type TrafficEntry,
} from "./monitor.js";
export { TrafficTap, type BusErrorReport, type TrafficSink } from "./traffic-tap.js";
export { scanEnvelope, type EnvelopeMeta } from "./envelope-scanner.js";
export { Ring } from "./ring.js";

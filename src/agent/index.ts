/** The agent SDK: native dMCP agents that serve tools, share context and call each other, without MCP. */
export { Agent, type AgentCallOptions, type AgentOptions } from "./agent.js";
export { AgentDeclarationError, AgentStateError } from "./errors.js";
export type { AgentSubscription, ContextEvent, ContextHandler, SubscribeOptions } from "./subscriptions.js";
export {
  toCallToolResult,
  type CallToolResult,
  type ContentBlock,
  type ToolAnnotations,
  type ToolContext,
  type ToolDefinition,
  type ToolHandler,
  type ToolListEntry,
} from "./tools.js";
export type { ReplayFrom } from "../bus/index.js";

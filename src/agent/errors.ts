/**
 * Local errors of the agent SDK. They report mistakes in the program that uses the SDK (a bad name, a
 * method called at the wrong time) and never cross the bus; what crosses the bus is a DmcpError.
 */

/** A tool, name, topic or schema given to the Agent is not valid; thrown where it is declared. */
export class AgentDeclarationError extends Error {
  readonly code = "INVALID_AGENT_DECLARATION";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AgentDeclarationError";
  }
}

/** A method that needs a running agent was called before start() or after stop(). */
export class AgentStateError extends Error {
  readonly code = "AGENT_NOT_RUNNING";
  constructor(message: string) {
    super(message);
    this.name = "AgentStateError";
  }
}

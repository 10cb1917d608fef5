/**
 * The gateway's access policy applied to calls: what an identity may use, whether a call may go
 * ahead, and the `caller` its envelope carries to the executor (PROTOCOL.md: caller).
 */
import { ErrorCode, type Caller, RequestError } from "../../protocol/index.js";
import { EXTENSION_METHODS } from "../catalog/extensions.js";
import { ALLOW_ALL, type Access, type CallerAccess, type Identity, type PolicyTarget } from "./policy.js";

/** What authorization asks of a call. */
export interface AuthorizedCall {
  identity: Identity;
  access: Access;
  method: string;
  /** The item the call uses (worked out by routing), undefined when there is none a policy names. */
  policyTarget: PolicyTarget | undefined;
}

export class AccessControl {
  /** Each identity's `caller`, worked out once: a session's requests share one identity object. */
  private readonly callers = new WeakMap<Identity, Caller>();

  constructor(private readonly options: CallerAccess) {}

  /** What an identity may use under the gateway's policy. */
  accessFor(identity: Identity): Access {
    return this.options.policy?.accessFor(identity) ?? ALLOW_ALL;
  }

  /** Throws FORBIDDEN when the call's target is one its access does not allow; unknown targets pass (routing names them). */
  authorize(call: AuthorizedCall): void {
    const { access, identity, method } = call;
    if (access === ALLOW_ALL) return;
    // Extension methods name no tool, prompt or listed resource the policy could judge: refused under a policy.
    if (EXTENSION_METHODS[method]) throw new RequestError(ErrorCode.Forbidden, `Forbidden: ${method} (an extension method) is not offered when an access policy applies`);
    const target = call.policyTarget;
    if (!target || access.allows(target.kind, target.names)) return;
    const what = target.kind === "tools" ? "tool" : target.kind === "prompts" ? "prompt" : "resource";
    throw new RequestError(ErrorCode.Forbidden, `Forbidden: ${identity.kind} ${JSON.stringify(identity.subject)} may not use ${what} ${target.names[0]}`, {
      data: { [what === "resource" ? "uri" : "name"]: target.names[0] },
    });
  }

  /** The envelope's `caller` for a request of this identity: subject and issuer, plus what the gateway is configured to forward. */
  callerOf(identity: Identity): Caller {
    const known = this.callers.get(identity);
    if (known) return known;
    const caller: Caller = { kind: identity.kind, subject: identity.subject };
    if (typeof identity.claims?.iss === "string") caller.issuer = identity.claims.iss;
    const claims = this.options.forwardClaims?.filter((claim) => identity.claims?.[claim] !== undefined);
    if (claims?.length) caller.claims = Object.fromEntries(claims.map((claim) => [claim, identity.claims![claim]]));
    if (this.options.forwardToken && identity.token) caller.token = identity.token;
    this.callers.set(identity, caller);
    return caller;
  }
}

/**
 * The pieces of sealed server-to-client traffic that need no bus (PROTOCOL.md §14.3, §16, §19.2): a
 * sealed message's service is read once it is opened, and its signer must be trusted for that
 * service; a gateway seals a forwarded answer from its caller key to the key a request's id names.
 */
import { describe, expect, it } from "vitest";
import { sealedToOfRequestId } from "../../src/gateway/sessions/server-requests.js";
import { createEnvelope, type Envelope } from "../../src/protocol/index.js";
import { CurveKey, MessageSecurity, SigningKey } from "../../src/security/index.js";

const serviceOf = (envelope: Envelope) => (envelope.type === "prompt_request" ? envelope.payload.service : undefined);

describe("a sealed message's service, read once it is opened", () => {
  const sealKey = CurveKey.generate();
  const signer = SigningKey.generate();
  const gatewayKey = CurveKey.generate();
  const gateway = (requireSignatures: boolean) => new MessageSecurity({ serviceKeys: { files: [signer.publicKey] }, requireSignatures, callerSealKey: gatewayKey });
  const sealedRequest = (service: string) =>
    new MessageSecurity({ signingKey: signer, sealKeys: { [service]: sealKey } }).encode(createEnvelope("prompt_request", { service, method: "roots/list" }, { sender: "x-1" }), {
      from: sealKey.publicKey,
      to: gatewayKey.publicKey,
    });

  it("is accepted, verified, from a key trusted for it", () => {
    const decoded = gateway(true).decode(sealedRequest("files"), { receiver: "g", speaksFor: serviceOf });
    expect(decoded).toMatchObject({ ok: true, signer: signer.publicKey, sealed: { from: sealKey.publicKey, to: gatewayKey.publicKey } });
  });

  it("is UNTRUSTED_SIGNER from a key trusted for another service (require mode), and unverified otherwise", () => {
    expect(gateway(true).decode(sealedRequest("mail"), { receiver: "g", speaksFor: serviceOf })).toMatchObject({ ok: false, error: { code: "UNTRUSTED_SIGNER" } });
    const permissive = gateway(false).decode(sealedRequest("mail"), { receiver: "g", speaksFor: serviceOf });
    expect(permissive.ok).toBe(true);
    expect(permissive.ok && permissive.signer).toBeUndefined();
  });
});

describe("a client's answer forwarded to the gateway that asked", () => {
  it("names the asking gateway's caller key in the request id, and opens only there", () => {
    const key = CurveKey.generate();
    const asking = new MessageSecurity({ callerSealKey: key });
    const askingKey = key.publicKey;
    expect(sealedToOfRequestId(`dmcp-7.${askingKey}@gateway-1`)).toBe(askingKey);
    expect(sealedToOfRequestId("dmcp-7@gateway-1")).toBeUndefined();
    const sealed = new MessageSecurity({ callerSealKey: CurveKey.generate() }).sealFromSelf({ result: { ok: 1 } }, askingKey);
    expect(asking.openToSelf(sealed)).toEqual({ result: { ok: 1 } });
    expect(() => new MessageSecurity({ callerSealKey: CurveKey.generate() }).openToSelf(sealed)).toThrow(/a key this receiver does not hold/);
  });
});

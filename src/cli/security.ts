/** The message security flags of `dmcp gateway`, `dmcp wrap` and `dmcp up` (PROTOCOL.md §14). */
import { resolve } from "node:path";
import type { Registry } from "prom-client";
import { KeyError, MessageSecurity, readSeedFile, type SecurityOptions } from "../security/index.js";
import { parseDuration, UsageError } from "./args.js";
import { durationMs, type SecurityConfig } from "./config.js";

export const securityOptions = {
  "sign-key": { type: "string" },
  "trust-key": { type: "string", multiple: true },
  "require-signatures": { type: "boolean" },
  "replay-window": { type: "string" },
} as const;

export const securityHelp = `  --sign-key FILE       sign every message with the ed25519 nkey seed in FILE (dmcp keygen writes one)
  --trust-key KEY       trust messages signed by public key KEY (U…); SERVICE=KEY trusts it only to
                        speak for SERVICE: its answers, announcements, heartbeats (repeatable)
  --require-signatures  reject unsigned messages and messages signed by keys not trusted (default:
                        accept them; reject bad signatures and replays of trusted keys)
  --replay-window D     how far a signed message's timestamp may be off, e.g. 30s (default: 2m)
`;

/** What the flags say, as SecurityOptions (keys read from their files); `extra` adds the command's own (seal keys). */
export function securityFromFlags(values: Record<string, unknown>, extra: SecurityOptions = {}): SecurityOptions {
  const text = (flag: string) => (typeof values[flag] === "string" ? (values[flag] as string) : undefined);
  const options: SecurityOptions = { ...extra };
  const signKey = text("sign-key");
  if (signKey) options.signingKey = seedFrom(signKey, "--sign-key");
  for (const value of (values["trust-key"] as string[] | undefined) ?? []) {
    const equals = value.indexOf("=");
    if (equals < 0) {
      options.trustedKeys = [...(options.trustedKeys ?? []), value];
    } else {
      const service = value.slice(0, equals);
      options.serviceKeys = { ...options.serviceKeys, [service]: [...(options.serviceKeys?.[service] ?? []), value.slice(equals + 1)] };
    }
  }
  if (values["require-signatures"]) options.requireSignatures = true;
  const window = text("replay-window");
  if (window) options.replayWindowMs = parseDuration(window, "--replay-window");
  return options;
}

/** The config file's `security` section as SecurityOptions (seed files read, relative to the config file). */
export function securityFromConfig(section: SecurityConfig | undefined, baseDir: string): SecurityOptions {
  if (!section) return {};
  const seed = (file: string, key: string) => seedFrom(resolve(baseDir, file), key);
  const curveSeed = (file: string, key: string) => curveSeedFrom(resolve(baseDir, file), key);
  const window = section.replayWindow;
  return {
    ...(section.signKey ? { signingKey: seed(section.signKey, "security.signKey") } : {}),
    trustedKeys: section.trustedKeys,
    serviceKeys: section.serviceKeys,
    requireSignatures: section.requireSignatures,
    ...(window !== undefined ? { replayWindowMs: durationMs(window, "security.replayWindow") } : {}),
    sealKeys: Object.fromEntries(Object.entries(section.sealKeys).map(([service, file]) => [service, curveSeed(file, `security.sealKeys.${service}`)])),
    sealTo: section.sealTo,
    ...(section.callerSealKey ? { callerSealKey: curveSeed(section.callerSealKey, "security.callerSealKey") } : {}),
  };
}

/** The MessageSecurity the options describe, or undefined when they ask for nothing (plain envelopes). */
export function createSecurity(options: SecurityOptions, metrics?: Registry): MessageSecurity | undefined {
  const { metrics: _, ...asked } = options;
  const isSet = (value: unknown) => value !== undefined && value !== false && (typeof value !== "object" || Object.keys(value as object).length > 0);
  if (!Object.values(asked).some(isSet)) return undefined;
  try {
    return new MessageSecurity({ ...options, ...(metrics ? { metrics } : {}) });
  } catch (err) {
    if (err instanceof KeyError) throw new UsageError(err.message);
    throw err;
  }
}

/** Reads a seed file, as a usage error when it is missing or holds no seed. */
export function seedFrom(file: string, flag: string): string {
  try {
    return readSeedFile(file);
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`);
  }
}

/** Reads a curve seed file (a seal key), as a usage error naming `flag` when it is missing or holds no curve seed (`SX…`). */
export function curveSeedFrom(file: string, flag: string): string {
  const seed = seedFrom(file, flag);
  if (!seed.startsWith("SX")) throw new UsageError(`${flag}: ${file} holds no curve seed (SX…, not ${seed.slice(0, 2)}…): make one with dmcp keygen --curve`);
  return seed;
}

/** Parses `SERVICE=VALUE` flags (repeatable) into a record. */
export function servicePairs(values: string[] | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const value of values ?? []) {
    const equals = value.indexOf("=");
    if (equals <= 0) throw new UsageError(`${flag} needs SERVICE=KEY, got ${JSON.stringify(value)}`);
    out[value.slice(0, equals)] = value.slice(equals + 1);
  }
  return out;
}

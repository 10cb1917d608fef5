import { writeFileSync } from "node:fs";
import { CurveKey, KeyError, SigningKey } from "../../security/index.js";
import type { Logger } from "../../util/index.js";
import { parse, UsageError } from "../args.js";
import { seedFrom } from "../security.js";

export const keygenHelp = `Usage: dmcp keygen [--curve] --out FILE
       dmcp keygen --public FILE

Creates a key for message security (PROTOCOL.md §14) and prints its public half on stdout.

  --out FILE            write the new seed to FILE (created with mode 0600; an existing file is
                        never overwritten): an ed25519 signing key (seed SU…, public key U…) for
                        --sign-key, whose public key others give to --trust-key
  --curve               a curve key (xkey: seed SX…, public key X…) instead, for --seal-key; its
                        public key is what gateways elsewhere give to --seal-to
  --public FILE         print the public key of the seed in FILE
  -h, --help            show this help
`;

export async function keygenCommand(argv: string[], _logger: Logger): Promise<number> {
  const { values } = parse(argv, { out: { type: "string" }, curve: { type: "boolean" }, public: { type: "string" } });
  if (values.help) {
    process.stdout.write(keygenHelp);
    return 0;
  }
  if (values.public !== undefined) {
    if (values.out !== undefined) throw new UsageError("give --out FILE or --public FILE, not both");
    process.stdout.write(`${publicKeyOf(seedFrom(values.public, "--public"))}\n`);
    return 0;
  }
  if (values.out === undefined) throw new UsageError("dmcp keygen needs --out FILE (see dmcp keygen --help)");
  const key = values.curve ? CurveKey.generate() : SigningKey.generate();
  try {
    writeFileSync(values.out, `${key.seed}\n`, { mode: 0o600, flag: "wx" });
  } catch (err) {
    throw new UsageError(`--out: cannot create ${values.out}: ${(err as Error).message}`);
  }
  process.stdout.write(`${key.publicKey}\n`);
  return 0;
}

function publicKeyOf(seed: string): string {
  try {
    return seed.startsWith("SX") ? CurveKey.fromSeed(seed).publicKey : SigningKey.fromSeed(seed).publicKey;
  } catch (err) {
    if (err instanceof KeyError) throw new UsageError(`--public: ${err.message}`);
    throw err;
  }
}

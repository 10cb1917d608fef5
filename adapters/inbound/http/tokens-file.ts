/**
 * The tokens file of the HTTP gateway, kept current while it runs: reread when its directory changes
 * and on `reload()` (SIGHUP). The directory is watched, not the file: editors write a new file and
 * rename it over the old one, and mounted secrets swap a symlink beside it; any change there rereads
 * the file, and only a different set of tokens counts. A file that cannot be read or parsed keeps the
 * last good tokens and logs an error.
 */
import { watch, type FSWatcher } from "node:fs";
import { dirname } from "node:path";
import type { Logger } from "../../../src/util/index.js";
import { readTokensFile } from "./middleware/index.js";

/** Rereads wait this long after the last change, so that a burst of writes is read once, whole. */
const SETTLE_MS = 100;

export interface TokensFile {
  /** Rereads the file now (for SIGHUP); logs what changed, or that nothing did. */
  reload(reason: string): void;
  close(): void;
}

export function followTokensFile(path: string, initial: Record<string, string>, options: { logger: Logger; onChange: (tokens: Record<string, string>) => void }): TokensFile {
  const { logger } = options;
  let current = initial;
  let settling: NodeJS.Timeout | undefined;

  const reload = (reason: string) => {
    let tokens: Record<string, string>;
    try {
      tokens = readTokensFile(path);
    } catch (err) {
      logger.error({ path, reason, error: (err as Error).message }, "tokens file unreadable or invalid: keeping the last good tokens");
      return;
    }
    const added = Object.keys(tokens).filter((name) => !Object.hasOwn(current, name));
    const removed = Object.keys(current).filter((name) => !Object.hasOwn(tokens, name));
    const replaced = Object.keys(tokens).filter((name) => Object.hasOwn(current, name) && current[name] !== tokens[name]);
    const changed = added.length + removed.length + replaced.length > 0;
    // Names are identities, not secrets: they say who came and went.
    if (changed || reason === "SIGHUP") logger.info({ path, reason, names: Object.keys(tokens).length, added, removed, replaced }, "tokens file reloaded");
    if (!changed) return;
    current = tokens;
    options.onChange(tokens);
  };

  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, () => {
      clearTimeout(settling);
      settling = setTimeout(() => reload("file changed"), SETTLE_MS);
    });
    watcher.on("error", (err) => logger.error({ path, error: err.message }, "cannot watch the tokens file any longer: reload it with SIGHUP"));
  } catch (err) {
    logger.error({ path, error: (err as Error).message }, "cannot watch the tokens file: reload it with SIGHUP");
  }

  // It may have changed between the read that gave `initial` and the start of the watch.
  reload("start");
  return {
    reload,
    close() {
      clearTimeout(settling);
      watcher?.close();
    },
  };
}

/**
 * A KV watch that lasts as long as its owner wants it. A reader whose watch has stopped keeps what it
 * knew forever: services announced later never show, sessions deleted elsewhere stay open. nats.js
 * ends a watch when its ordered consumer cannot be made again (a cluster busy electing leaders), and
 * when the consumer is lost on the server the watch goes silent without ending: its client notices
 * only after two missed heartbeats of 30 s each (test/integration/kv-watch.test.ts deletes one).
 * So the bucket's last revision is checked every few seconds, and a watch that stays behind it, or
 * that ends, starts again from the revision after the last one it delivered: no change is missed.
 */
import { KvWatchInclude, type KV, type KvWatchEntry } from "@nats-io/kv";
import type { Logger } from "../util/index.js";

/** How long to wait before watching again after a watch ended or could not start. */
export const REWATCH_PAUSE_MS = 1000;
/** How often the bucket's last revision is compared with what the watch delivered. */
export const WATCH_CHECK_EVERY_MS = 5000;

export interface KeptWatchOptions {
  /** What the first watch delivers (later ones resume where it left off): every value, or changes only. */
  include: typeof KvWatchInclude.LastValue | typeof KvWatchInclude.UpdatesOnly;
  /** Names the watch in logs ("registry", "sessions"). */
  what: string;
  logger: Logger;
  pauseMs?: number;
  checkEveryMs?: number;
}

export interface KeptWatch {
  stop(): void;
  /** How many times the watch was started again. */
  readonly restarts: number;
}

/**
 * Watches every key of `kv`, calling `onEntry` for each entry (a throwing `onEntry` is logged, never
 * ends the watch). Resolves once the first watch is set up; rejects when it cannot be.
 */
export async function keepWatching(kv: KV, onEntry: (entry: KvWatchEntry) => void, options: KeptWatchOptions): Promise<KeptWatch> {
  const pauseMs = options.pauseMs ?? REWATCH_PAUSE_MS;
  // Where a watch that ends resumes: the revision after the last one delivered. A changes-only watch
  // that delivered nothing yet resumes after the bucket's last revision when it began.
  let resumeFrom = options.include === KvWatchInclude.UpdatesOnly ? (await lastRevision(kv)) + 1 : 0;
  let stopped = false;
  let current: { stop(): void } | undefined;
  let restarts = 0;
  let deliveredSinceCheck = false;
  let behindAtLastCheck = false;

  const start = async (): Promise<void> => {
    const iterator = await kv.watch(resumeFrom > 0 ? { key: ">", resumeFromRevision: resumeFrom } : { key: ">", include: options.include });
    current = iterator;
    if (stopped) iterator.stop();
    void (async () => {
      for await (const entry of iterator) {
        resumeFrom = entry.revision + 1;
        deliveredSinceCheck = true;
        try {
          onEntry(entry);
        } catch (err) {
          options.logger.warn({ err, key: entry.key }, `ignoring a bad ${options.what} entry`);
        }
      }
    })()
      .catch((err: unknown) => options.logger.warn({ err }, `the ${options.what} watch failed`))
      .finally(() => {
        if (current === iterator) startAgainSoon("ended");
      });
  };

  const startAgainSoon = (why: string): void => {
    if (stopped) return;
    options.logger.warn({ resume_from: resumeFrom }, `the ${options.what} watch ${why}; watching again`);
    setTimeout(() => {
      if (stopped) return;
      restarts++;
      start().catch((err: unknown) => {
        options.logger.warn({ err }, `could not watch the ${options.what} bucket`);
        startAgainSoon("could not start");
      });
    }, pauseMs).unref();
  };

  // Behind at two checks in a row with nothing delivered in between: the watch has gone silent.
  const check = async (): Promise<void> => {
    const behind = !deliveredSinceCheck && (await hasRevisionFrom(kv, Math.max(resumeFrom, 1)));
    deliveredSinceCheck = false;
    if (behind && behindAtLastCheck && current && !stopped) {
      const silent = current;
      current = undefined;
      silent.stop();
      startAgainSoon("fell silent");
      behindAtLastCheck = false;
      return;
    }
    behindAtLastCheck = behind;
  };
  const checker = setInterval(() => {
    check().catch((err: unknown) => options.logger.debug({ err }, `could not check the ${options.what} watch`));
  }, options.checkEveryMs ?? WATCH_CHECK_EVERY_MS);
  checker.unref();

  try {
    await start();
  } catch (err) {
    clearInterval(checker);
    throw err;
  }
  return {
    stop() {
      stopped = true;
      clearInterval(checker);
      const iterator = current;
      current = undefined;
      iterator?.stop();
    },
    get restarts() {
      return restarts;
    },
  };
}

async function lastRevision(kv: KV): Promise<number> {
  return (await kv.status()).streamInfo.state.last_seq;
}

/** Whether the bucket still holds an entry of `revision` or later (values expire oldest first, so its last one). */
async function hasRevisionFrom(kv: KV, revision: number): Promise<boolean> {
  const { messages, last_seq } = (await kv.status()).streamInfo.state;
  return messages > 0 && last_seq >= revision;
}

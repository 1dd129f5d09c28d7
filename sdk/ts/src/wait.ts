import { Code, ConnectError } from "@connectrpc/connect";
import { DEFAULT_TIMEOUT_MS } from "./transport.js";

/** Options shared by the helpers that poll until a wallet or signature settles. */
export interface WaitOptions {
  /** Stops waiting (and the call in flight); the wait then fails with `Code.Canceled`. */
  signal?: AbortSignal;
  /**
   * How long the whole wait may take, in milliseconds; then it fails with
   * `Code.DeadlineExceeded`. Each poll is bounded by what is left. Defaults: 5
   * minutes for wallets, 2 minutes for signatures.
   */
  timeoutMs?: number;
  /** First pause between polls in milliseconds (default 250); it grows by half each poll up to `maxPollIntervalMs`. */
  pollIntervalMs?: number;
  /** Longest pause between polls in milliseconds (default 2 000). */
  maxPollIntervalMs?: number;
}

/**
 * How long each read asks the server to hold the call until the wallet or
 * signature settles (the `wait` field of GetWallet and GetSignature), in
 * milliseconds: the answer comes the moment the outcome is stored, so a wait
 * costs one call per 25 s instead of one per poll. Servers that do not hold
 * calls are read with the poll intervals.
 */
export const HOLD_WAIT_MS = 25_000;

/** What one read of a wait gets: its signal, its timeout and how long the server may hold it. */
export interface WaitCall {
  signal?: AbortSignal;
  timeoutMs: number;
  holdMs: number;
}

/** Consecutive Unavailable or per-call DeadlineExceeded errors a wait absorbs before it gives up. */
const TRANSIENT_RETRIES = 3;

function canceled(signal: AbortSignal | undefined, what: string): ConnectError {
  const reason: unknown = signal?.reason;
  const why = reason instanceof Error ? `: ${reason.message}` : typeof reason === "string" ? `: ${reason}` : "";
  return new ConnectError(`sigil: stopped waiting, ${what} (aborted by the caller${why})`, Code.Canceled, undefined, undefined, reason);
}

function sleep(ms: number, signal: AbortSignal | undefined, what: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(canceled(signal, what()));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(canceled(signal, what()));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Calls `get` until `done` holds for what it returns, within an overall
 * deadline and an optional AbortSignal. Each call after the first asks the server to hold it
 * until the outcome (`holdMs`); a call that came back sooner, from a server
 * that does not hold calls, is followed by a pause that grows with backoff.
 * Transient errors (Unavailable, one slow poll) are retried a few times;
 * anything else is thrown at once.
 */
export async function poll<T>(
  get: (call: WaitCall) => Promise<T>,
  done: (t: T) => boolean,
  describe: (t: T) => string,
  defaultWaitMs: number,
  o: WaitOptions,
  progress: ((t: T, elapsedMs: number) => void) | undefined,
): Promise<T> {
  const started = Date.now();
  const total = o.timeoutMs ?? defaultWaitMs;
  const deadline = started + (total > 0 ? total : Number.POSITIVE_INFINITY);
  let interval = Math.max(10, o.pollIntervalMs ?? 250);
  const maxInterval = Math.max(interval, o.maxPollIntervalMs ?? 2_000);
  let last: T | undefined;
  let transient = 0;
  const what = (): string => (last === undefined ? "nothing read yet" : describe(last));
  for (;;) {
    if (o.signal?.aborted) throw canceled(o.signal, what());
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new ConnectError(`sigil: gave up after ${formatMs(total)}: ${what()}`, Code.DeadlineExceeded);
    }
    let held = 0;
    let heldAsked = 0;
    try {
      const timeoutMs = Math.max(1, Math.min(left, DEFAULT_TIMEOUT_MS));
      // The first read answers at once, so the caller learns where things
      // stand; the next ones are held until the outcome.
      const holdMs = last === undefined ? 0 : Math.max(0, Math.floor(Math.min(HOLD_WAIT_MS, left - 100, (timeoutMs * 3) / 4)));
      const call: WaitCall = { timeoutMs, holdMs };
      heldAsked = holdMs;
      if (o.signal) call.signal = o.signal;
      const callStart = Date.now();
      last = await get(call);
      held = Date.now() - callStart;
      transient = 0;
    } catch (err) {
      const code = err instanceof ConnectError ? err.code : Code.Unknown;
      if (o.signal?.aborted) throw canceled(o.signal, what());
      if ((code === Code.Unavailable || code === Code.DeadlineExceeded) && ++transient <= TRANSIENT_RETRIES) {
        await sleep(Math.min(interval, Math.max(0, deadline - Date.now())), o.signal, what);
        interval = Math.min(maxInterval, interval * 1.5);
        continue;
      }
      throw err;
    }
    progress?.(last, Date.now() - started);
    if (done(last)) return last;
    // After the first read the next one is held, so it follows at once; a
    // held read that came back early (a server that does not hold calls) is
    // followed by the rest of the poll interval.
    const pause = heldAsked > 0 ? Math.max(0, interval - held) : 0;
    await sleep(Math.min(pause, Math.max(0, deadline - Date.now())), o.signal, what);
    interval = Math.min(maxInterval, interval * 1.5);
  }
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${Number((ms / 1000).toFixed(1))} s` : `${ms} ms`;
}

import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { explainTransportError } from "./errors.js";

/**
 * The API token: a string, or a function returning one (called before every
 * request, so a rotated token is picked up without a new client).
 */
export type TokenSource = string | (() => string | Promise<string>);

/** How long one call may take when neither the client nor the call says: 30 seconds. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * Checks a base URL and returns it normalised (no trailing slash). Throws a
 * TypeError naming the mistake: not a string, not absolute, not http(s).
 */
export function checkBaseUrl(baseUrl: unknown): string {
  if (typeof baseUrl !== "string" || baseUrl.trim() === "") {
    throw new TypeError(
      "sigil: baseUrl is required: the URL of the Sigil API port, e.g. http://127.0.0.1:8080 (`sigil dev` prints it and writes it to dev.json)",
    );
  }
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(baseUrl.trim())) {
    throw new TypeError(`sigil: baseUrl ${JSON.stringify(baseUrl)} must start with http:// or https://, e.g. http://127.0.0.1:8080`);
  }
  let u: URL;
  try {
    u = new URL(baseUrl.trim());
  } catch {
    throw new TypeError(`sigil: baseUrl ${JSON.stringify(baseUrl)} is not an absolute URL; expected e.g. http://127.0.0.1:8080`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new TypeError(`sigil: baseUrl ${JSON.stringify(baseUrl)} must start with http:// or https://, e.g. http://127.0.0.1:8080`);
  }
  if (u.search || u.hash) {
    throw new TypeError(`sigil: baseUrl ${JSON.stringify(baseUrl)} must not have a query or fragment`);
  }
  return u.toString().replace(/\/+$/, "");
}

/** Checks that a token was given; throws a TypeError saying where to get one. */
export function checkToken(token: unknown): TokenSource {
  if (typeof token === "function") return token as TokenSource;
  if (typeof token !== "string" || token.trim() === "") {
    throw new TypeError(
      "sigil: token is required: a Sigil API token (`sigil token create --scope ...`, or the token `sigil dev` prints and writes to dev.json)",
    );
  }
  return token;
}

async function resolveToken(token: TokenSource): Promise<string> {
  const t = typeof token === "function" ? await token() : token;
  if (typeof t !== "string" || t === "") {
    throw new ConnectError("sigil: the token function returned no token", Code.Unauthenticated);
  }
  return t;
}

/**
 * Wraps a transport so that every call carries `Authorization: Bearer
 * <token>`, gets a default timeout when the call sets none, and reports a
 * server it could not reach with the URL it tried. Works on any transport,
 * so one given by the caller gets the same behaviour as the defaults.
 */
export function authorizedTransport(
  inner: Transport,
  token: TokenSource,
  defaultTimeoutMs: number,
  baseUrl: string | undefined,
): Transport {
  const headers = async (init: HeadersInit | undefined): Promise<Headers> => {
    const h = new Headers(init);
    h.set("Authorization", `Bearer ${await resolveToken(token)}`);
    return h;
  };
  const timeout = (t: number | undefined): number | undefined =>
    t === undefined ? (defaultTimeoutMs > 0 ? defaultTimeoutMs : undefined) : t > 0 ? t : undefined;
  const explain = (err: unknown, method: string, signal: AbortSignal | undefined, t: number | undefined): unknown => {
    const ce = ConnectError.from(err);
    if (ce.code === Code.Canceled && signal?.aborted) {
      const r: unknown = signal.reason;
      const why = r instanceof Error ? `: ${r.message}` : typeof r === "string" ? `: ${r}` : "";
      return new ConnectError(`sigil: ${method} aborted by the caller${why}`, Code.Canceled, ce.metadata, undefined, ce);
    }
    if (ce.code === Code.DeadlineExceeded && t !== undefined && ce.rawMessage === "the operation timed out") {
      return new ConnectError(
        `sigil: ${method} timed out after ${t} ms (raise timeoutMs on the client or the call)`,
        Code.DeadlineExceeded,
        ce.metadata,
        undefined,
        ce,
      );
    }
    return explainTransportError(err, baseUrl);
  };
  return {
    async unary(method, signal, timeoutMs, header, input, contextValues) {
      const t = timeout(timeoutMs);
      try {
        return await inner.unary(method, signal, t, await headers(header), input, contextValues);
      } catch (err) {
        throw explain(err, method.name, signal, t);
      }
    },
    async stream(method, signal, timeoutMs, header, input, contextValues) {
      const t = timeout(timeoutMs);
      try {
        return await inner.stream(method, signal, t, await headers(header), input, contextValues);
      } catch (err) {
        throw explain(err, method.name, signal, t);
      }
    },
  };
}

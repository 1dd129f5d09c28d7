import { Code, ConnectError } from "@connectrpc/connect";
import type { Signature, Wallet } from "./gen/sigil/wallet/v1/wallet_pb.js";
import { SignatureStatus } from "./gen/sigil/wallet/v1/wallet_pb.js";
import { ErrorDetailSchema, ErrorReason } from "./gen/sigil/wallet/v1/errors_pb.js";

/**
 * Returns the Connect code of any thrown value: the code the server sent for
 * a {@link ConnectError}, `Code.Unknown` for anything else.
 *
 * @example
 * ```ts
 * try { await sigil.getWallet(id) } catch (err) { console.log(Code[errorCode(err)]) }
 * ```
 */
export function errorCode(err: unknown): Code {
  if (err instanceof ConnectError) return err.code;
  // A ConnectError from another copy of @connectrpc/connect (two versions in
  // one bundle) fails instanceof but still carries a numeric code.
  if (isConnectErrorLike(err)) return err.code;
  return Code.Unknown;
}

/**
 * Returns the machine-readable reason the server attached to an error (a
 * `sigil.wallet.v1.ErrorDetail` in the Connect error details), such as
 * `ErrorReason.WALLET_NOT_ACTIVE` or `ErrorReason.IDEMPOTENCY_CONFLICT`, to
 * tell apart errors that share a code. Returns `ErrorReason.UNSPECIFIED` for
 * errors without one: raised by the SDK itself (a bad argument, a timeout, an
 * unreachable server), or from a server older than reasons. A reason newer
 * than this SDK comes back as its number.
 *
 * @example
 * ```ts
 * try { await sigil.signMessage(walletId, "hi") } catch (err) {
 *   if (errorReason(err) === ErrorReason.WALLET_NOT_ACTIVE) await sigil.waitForWallet(walletId)
 * }
 * ```
 */
export function errorReason(err: unknown): ErrorReason {
  if (!(err instanceof ConnectError)) return ErrorReason.UNSPECIFIED;
  const [detail] = err.findDetails(ErrorDetailSchema);
  return detail?.reason ?? ErrorReason.UNSPECIFIED;
}

function isConnectErrorLike(err: unknown): err is { code: Code; name: string } {
  return (
    typeof err === "object" &&
    err !== null &&
    (err as { name?: unknown }).name === "ConnectError" &&
    typeof (err as { code?: unknown }).code === "number"
  );
}

function hasCode(code: Code): (err: unknown) => boolean {
  return (err) => (err instanceof ConnectError || isConnectErrorLike(err)) && errorCode(err) === code;
}

/** True when the wallet or signature asked for does not exist (`Code.NotFound`). */
export const isNotFound: (err: unknown) => boolean = hasCode(Code.NotFound);

/** True when the token lacks the scope the call needs (`Code.PermissionDenied`). */
export const isPermissionDenied: (err: unknown) => boolean = hasCode(Code.PermissionDenied);

/** True when the token is missing, unknown or revoked (`Code.Unauthenticated`). */
export const isUnauthenticated: (err: unknown) => boolean = hasCode(Code.Unauthenticated);

/**
 * True when the request was malformed (`Code.InvalidArgument`): a bad id, a
 * hash that is not 32 bytes, an empty message, a field too long...
 */
export const isInvalidArgument: (err: unknown) => boolean = hasCode(Code.InvalidArgument);

/**
 * True when an `externalId` was reused with a different request body
 * (`Code.AlreadyExists`).
 */
export const isAlreadyExists: (err: unknown) => boolean = hasCode(Code.AlreadyExists);

/**
 * True when the request is valid but not now (`Code.FailedPrecondition`), for
 * example signing with a wallet that is not ACTIVE, or asking for a backend
 * the server does not run.
 */
export const isFailedPrecondition: (err: unknown) => boolean = hasCode(Code.FailedPrecondition);

/**
 * True when a call, or a wait for a wallet or signature, ran out of time
 * (`Code.DeadlineExceeded`).
 */
export const isDeadlineExceeded: (err: unknown) => boolean = hasCode(Code.DeadlineExceeded);

/** True when the caller aborted the call or the wait through its AbortSignal (`Code.Canceled`). */
export const isCanceled: (err: unknown) => boolean = hasCode(Code.Canceled);

/**
 * True when the server could not be reached or is overloaded
 * (`Code.Unavailable`): down, wrong URL, network error or, in a browser, an
 * origin the server does not allow (CORS).
 */
export const isUnavailable: (err: unknown) => boolean = hasCode(Code.Unavailable);

/** True when the server refused a request too large or too frequent (`Code.ResourceExhausted`). */
export const isResourceExhausted: (err: unknown) => boolean = hasCode(Code.ResourceExhausted);

/**
 * Thrown by {@link SigilClient.waitForWallet} (and `createWalletAndWait`) when
 * the wallet's key generation failed (status FAILED). The wallet, with its
 * `failureReason`, is attached.
 */
export class WalletFailedError extends Error {
  /** The wallet as last read, in status FAILED. */
  readonly wallet: Wallet;

  /** Creates the error for a wallet whose status is FAILED. */
  constructor(wallet: Wallet) {
    super(`sigil: wallet ${wallet.id} failed: ${wallet.failureReason || "no reason given"}`);
    this.name = "WalletFailedError";
    this.wallet = wallet;
  }
}

/**
 * Thrown by {@link SigilClient.waitForSignature} (and the `...AndWait` signing
 * helpers) when a signature request ends REJECTED (a validation policy refused
 * it) or FAILED (the backend could not sign). The request is attached.
 */
export class SignatureFailedError extends Error {
  /** The signature request as last read, in status REJECTED or FAILED. */
  readonly signature: Signature;
  /** True when a signer's validation policy refused to sign (status REJECTED). */
  readonly rejected: boolean;

  /** Creates the error for a signature request that ended REJECTED or FAILED. */
  constructor(signature: Signature) {
    const rejected = signature.status === SignatureStatus.REJECTED;
    super(
      `sigil: signature ${signature.id} ${rejected ? "was rejected" : "failed"}: ${signature.failureReason || "no reason given"}`,
    );
    this.name = "SignatureFailedError";
    this.signature = signature;
    this.rejected = rejected;
  }
}

/** True when `err` is a {@link WalletFailedError}. */
export function isWalletFailed(err: unknown): err is WalletFailedError {
  return err instanceof WalletFailedError;
}

/** True when `err` is a {@link SignatureFailedError} (REJECTED or FAILED). */
export function isSignatureFailed(err: unknown): err is SignatureFailedError {
  return err instanceof SignatureFailedError;
}

/** True when `err` is a {@link SignatureFailedError} for a request a validation policy REJECTED. */
export function isSignatureRejected(err: unknown): err is SignatureFailedError {
  return err instanceof SignatureFailedError && err.rejected;
}

/**
 * Rewrites transport-level failures (nothing came back from a Sigil server)
 * into a ConnectError that says which URL was tried and what to check. Errors
 * the server sent pass through unchanged: same code, same message.
 */
export function explainTransportError(err: unknown, baseUrl: string | undefined): unknown {
  const ce = ConnectError.from(err);
  const where = baseUrl ? ` at ${baseUrl}` : "";
  if (ce.code === Code.Canceled || ce.code === Code.DeadlineExceeded) {
    return ce;
  }
  if (isNetworkFailure(ce)) {
    let hint = "is the server running and is baseUrl its API port?";
    const origin = pageOrigin();
    if (origin !== undefined && baseUrl && sameOrigin(origin, baseUrl) === false) {
      hint =
        `is the server running, is baseUrl its API port, and does it allow this page's origin ` +
        `(start it with --cors-origin ${origin})? The browser hides which of these it is.`;
    }
    return new ConnectError(
      `cannot reach the Sigil API${where} (${ce.rawMessage}): ${hint}`,
      Code.Unavailable,
      ce.metadata,
      undefined,
      ce,
    );
  }
  if (ce.code === Code.Unimplemented && /^HTTP \d+/.test(ce.rawMessage)) {
    return new ConnectError(
      `the server${where} does not serve sigil.wallet.v1.WalletService (${ce.rawMessage}): is baseUrl the Sigil API port?`,
      Code.Unimplemented,
      ce.metadata,
      undefined,
      ce,
    );
  }
  return err;
}

function isNetworkFailure(ce: ConnectError): boolean {
  const cause = ce.cause;
  if (ce.code === Code.Unavailable && cause !== undefined && !(cause instanceof ConnectError)) {
    return true; // connect-node: ECONNREFUSED, ENOTFOUND, socket hang up...
  }
  if (ce.code === Code.Unknown && cause instanceof TypeError) {
    return true; // fetch(): "Failed to fetch", "NetworkError ...", "Load failed"
  }
  const m = ce.rawMessage;
  return /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ECONNRESET|EHOSTUNREACH|socket hang up|Failed to fetch|NetworkError|Load failed|fetch failed/i.test(
    m,
  );
}

function pageOrigin(): string | undefined {
  const loc = (globalThis as { location?: { origin?: unknown } }).location;
  return typeof loc?.origin === "string" && loc.origin !== "null" ? loc.origin : undefined;
}

function sameOrigin(origin: string, url: string): boolean | undefined {
  try {
    return new URL(url).origin === origin;
  } catch {
    return undefined;
  }
}

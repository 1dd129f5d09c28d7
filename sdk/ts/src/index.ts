/**
 * The platform-neutral part of the Sigil SDK: the client, its helpers, error
 * helpers and the generated WalletService types. Import
 * `@sigil-wallet/sdk` instead, which adds `createSigilClient` with the right
 * transport for Node or the browser.
 *
 * @packageDocumentation
 */
export {
  createSigilClientWith,
  DEFAULT_SIGNATURE_WAIT_MS,
  DEFAULT_WALLET_WAIT_MS,
  type BackendName,
  type CallOptions,
  type CreateSignatureOptions,
  type CreateWalletOptions,
  type DefaultTransportFactory,
  type ListSignaturesOptions,
  type ListWalletsOptions,
  type SigilClient,
  type SigilClientOptions,
  type SignatureProgress,
  type SignOptions,
  type WaitForSignatureOptions,
  type WaitForWalletOptions,
  type WalletProgress,
} from "./client.js";
export type { WaitOptions } from "./wait.js";
export type { Page, PageIterable } from "./paging.js";
export { DEFAULT_TIMEOUT_MS, type TokenSource } from "./transport.js";
export { ethereumSignature, fromHex, hashBytes, toHex } from "./bytes.js";
export { canonicalRequest, eip191Digest, keccak256, RequestKey, type RequestFields, type SignedRequestFields } from "./requestkey.js";
export {
  errorCode,
  errorReason,
  isAlreadyExists,
  isCanceled,
  isDeadlineExceeded,
  isFailedPrecondition,
  isInvalidArgument,
  isNotFound,
  isPermissionDenied,
  isResourceExhausted,
  isSignatureFailed,
  isSignatureRejected,
  isUnauthenticated,
  isUnavailable,
  isWalletFailed,
  SignatureFailedError,
  WalletFailedError,
} from "./errors.js";
// Re-exported so callers need not depend on @connectrpc/connect to inspect errors.
export { Code, ConnectError } from "@connectrpc/connect";
// The generated API: services, messages and enums (their TSDoc comes from wallet.proto).
export * from "./gen/sigil/wallet/v1/wallet_pb.js";
// ErrorReason and ErrorDetail: the reasons errorReason returns.
export * from "./gen/sigil/wallet/v1/errors_pb.js";

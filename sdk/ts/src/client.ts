import { durationFromMs, type Duration } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  Backend,
  KeyScheme,
  SignatureStatus,
  WalletService,
  WalletStatus,
  type Signature,
  type Wallet,
} from "./gen/sigil/wallet/v1/wallet_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { RequestSignatureSchema } from "./gen/sigil/wallet/v1/wallet_pb.js";
import { hashBytes, messageBytes } from "./bytes.js";
import { eip191Digest, type RequestKey } from "./requestkey.js";
import { SignatureFailedError, WalletFailedError } from "./errors.js";
import { pager, type PageIterable } from "./paging.js";
import { authorizedTransport, checkBaseUrl, checkToken, DEFAULT_TIMEOUT_MS, type TokenSource } from "./transport.js";
import { poll, type WaitOptions } from "./wait.js";

/** Options of {@link createSigilClient}. */
export interface SigilClientOptions {
  /**
   * URL of the Sigil API port, e.g. `http://127.0.0.1:8080`. `sigil dev`
   * prints it and writes it to `dev.json` as `api_url`. Required unless a
   * `transport` is given (then only used in error messages).
   */
  baseUrl?: string;
  /**
   * The API token, sent as `Authorization: Bearer <token>` on every call; or a
   * function returning it (called per request). Required.
   */
  token: TokenSource;
  /**
   * A Connect transport to use instead of the default one (Connect protocol,
   * binary, over `@connectrpc/connect-node` in Node and
   * `@connectrpc/connect-web` in browsers), e.g. a gRPC or gRPC-Web
   * transport. The token, default timeout and error messages are added to it.
   */
  transport?: Transport;
  /**
   * Default timeout of each call, in milliseconds (default 30 000). A call's
   * own `timeoutMs` wins. 0 means no timeout. Waiting helpers have their own
   * overall timeout, see {@link WaitOptions}.
   */
  timeoutMs?: number;
  /** Extra Connect interceptors for the default transport (logging, tracing...). */
  interceptors?: Interceptor[];
  /**
   * The application's request key ({@link RequestKey.fromPem} of the file
   * `sigil request-key init` writes): every signature request is then signed
   * with it end to end, for signers and HSM drivers that require signed
   * requests.
   */
  requestKey?: RequestKey;
}

/** Per-call options accepted by every method of {@link SigilClient}. */
export interface CallOptions {
  /** Aborts the call; it then fails with `Code.Canceled`. */
  signal?: AbortSignal;
  /** Timeout of this call in milliseconds, overriding the client's default; 0 means none. */
  timeoutMs?: number;
  /** Extra request headers. */
  headers?: HeadersInit;
}

/** A backend by enum value or by name. */
export type BackendName = Backend | "mpc" | "hsm";

/** What {@link SigilClient.createWallet} takes; every field is optional. */
export interface CreateWalletOptions extends CallOptions {
  /** A free-form label, up to 200 characters. */
  name?: string;
  /** Where the key lives: `"mpc"`, `"hsm"` or a {@link Backend}; default: the server's default. */
  backend?: BackendName;
  /**
   * The key scheme: `KeyScheme.ECDSA_SECP256K1` (the default; Ethereum and
   * SegWit addresses), `KeyScheme.SCHNORR_SECP256K1` (BIP-340, a Taproot
   * `bc1p` address) or `KeyScheme.ED25519` (a Solana address); for a child
   * wallet, its parent's.
   */
  keyScheme?: KeyScheme;
  /** With `derivationPath`, makes a BIP-32 child of this ACTIVE MPC secp256k1 wallet, ACTIVE at once. */
  parentWalletId?: string;
  /** The child's non-hardened BIP-32 path below `parentWalletId`, e.g. `"m/0/1"`. */
  derivationPath?: string;
  /**
   * Idempotency key (up to 128 of `A-Za-z0-9._:-`): repeating the same request
   * returns the same wallet; the same key with a different request fails with
   * `Code.AlreadyExists`.
   */
  externalId?: string;
}

/** Options of {@link SigilClient.signHash} and {@link SigilClient.signMessage}: the request's external id, and how to wait. */
export interface SignOptions extends WaitForSignatureOptions {
  /** Idempotency key, as for wallets: the same request returns the same signature request. */
  externalId?: string;
  /** Extra request headers. */
  headers?: HeadersInit;
}

/**
 * What {@link SigilClient.createSignature} takes: the wallet and exactly one
 * of `hash` (ECDSA, Schnorr), `message` (ECDSA) and `rawMessage` (Ed25519).
 */
export interface CreateSignatureOptions extends CallOptions {
  /** The ACTIVE wallet that signs. */
  walletId: string;
  /** A 32-byte hash (bytes or hex), signed as is. */
  hash?: Uint8Array | string;
  /** A message signed as an EIP-191 personal message (what `personal_sign` does). */
  message?: string;
  /** Message bytes (or hex) signed as they are, by Ed25519 wallets: `result.ed25519` is the RFC 8032 signature. */
  rawMessage?: Uint8Array | string;
  /** Idempotency key: the same request returns the same signature request. */
  externalId?: string;
  /** The signed request's id, with a client `requestKey`; default a fresh random one. */
  requestId?: string;
}

/** Filter of {@link SigilClient.listWallets}. */
export interface ListWalletsOptions extends CallOptions {
  /** Only wallets in this status; default all. */
  status?: WalletStatus;
  /** Only the child wallets of this wallet; default all wallets. */
  parentWalletId?: string;
  /** Wallets fetched per page, 1 to 1000; default the server's (100). */
  pageSize?: number;
  /** Start from this page token (a `nextPageToken` seen before) instead of the beginning. */
  pageToken?: string;
}

/** Filter of {@link SigilClient.listSignatures}. */
export interface ListSignaturesOptions extends CallOptions {
  /** Only the requests of this wallet; default all wallets. */
  walletId?: string;
  /** Requests fetched per page, 1 to 1000; default the server's (100). */
  pageSize?: number;
  /** Start from this page token instead of the beginning. */
  pageToken?: string;
}

/** Progress of a wait for a wallet, given to {@link WaitForWalletOptions.onProgress}. */
export interface WalletProgress {
  /** The wallet as just read. */
  wallet: Wallet;
  /** Milliseconds since the wait began. */
  elapsedMs: number;
}

/** Progress of a wait for a signature, given to {@link WaitForSignatureOptions.onProgress}. */
export interface SignatureProgress {
  /** The signature request as just read. */
  signature: Signature;
  /** Milliseconds since the wait began. */
  elapsedMs: number;
}

/** Options of {@link SigilClient.waitForWallet}; the overall timeout defaults to 5 minutes. */
export interface WaitForWalletOptions extends WaitOptions {
  /** Called with each state read while waiting (MPC key generation takes tens of seconds). */
  onProgress?: (progress: WalletProgress) => void;
}

/** Options of {@link SigilClient.waitForSignature}; the overall timeout defaults to 2 minutes. */
export interface WaitForSignatureOptions extends WaitOptions {
  /** Called with each state read while waiting. */
  onProgress?: (progress: SignatureProgress) => void;
}

/** How long waiting for a wallet may take by default: 5 minutes (MPC keygen is slow). */
export const DEFAULT_WALLET_WAIT_MS = 5 * 60_000;
/** How long waiting for a signature may take by default: 2 minutes. */
export const DEFAULT_SIGNATURE_WAIT_MS = 2 * 60_000;

/**
 * A client of Sigil's WalletService. Every method returns the resource
 * itself, throws a `ConnectError` carrying the code and message the server
 * sent (tell them apart with {@link isNotFound} and friends), and never waits
 * longer than its timeout.
 */
export interface SigilClient {
  /** The underlying Connect client, for anything the helpers do not cover. */
  readonly service: Client<typeof WalletService>;

  /**
   * Creates a wallet, which starts in status CREATING while its key is made.
   * Use {@link SigilClient.waitForWallet} or
   * {@link SigilClient.createWalletAndWait} to wait until it is ACTIVE.
   * Needs the `wallets:write` scope.
   */
  createWallet(options?: CreateWalletOptions): Promise<Wallet>;

  /**
   * Polls a wallet until it is ACTIVE and returns it. Throws
   * {@link WalletFailedError} if key generation failed, a ConnectError with
   * `Code.DeadlineExceeded` when `timeoutMs` (default 5 minutes) passes, and
   * `Code.Canceled` when `signal` aborts.
   */
  waitForWallet(walletId: string, options?: WaitForWalletOptions): Promise<Wallet>;

  /** {@link SigilClient.createWallet} then {@link SigilClient.waitForWallet}. */
  createWalletAndWait(options?: CreateWalletOptions & WaitForWalletOptions): Promise<Wallet>;

  /** Returns one wallet; `Code.NotFound` if there is none with this id. Needs `wallets:read`. */
  getWallet(walletId: string, options?: CallOptions): Promise<Wallet>;

  /**
   * Lists wallets, oldest first, fetching pages as the iteration goes:
   * `for await (const w of sigil.listWallets()) ...`. Needs `wallets:read`.
   */
  listWallets(options?: ListWalletsOptions): PageIterable<Wallet>;

  /**
   * Asks for a signature and returns the request at once, usually PENDING
   * (no waiting): exactly one of `hash` (32 bytes or hex) and `message`
   * (EIP-191). A wallet that is not ACTIVE gives `Code.FailedPrecondition`.
   * Needs `signatures:write`. Wait with {@link SigilClient.waitForSignature}.
   */
  createSignature(options: CreateSignatureOptions): Promise<Signature>;

  /**
   * Polls a signature request until it is SIGNED and returns it (its `result`
   * set). Throws {@link SignatureFailedError} if it ends REJECTED or FAILED,
   * `Code.DeadlineExceeded` after `timeoutMs` (default 2 minutes) and
   * `Code.Canceled` when `signal` aborts.
   */
  waitForSignature(signatureId: string, options?: WaitForSignatureOptions): Promise<Signature>;

  /**
   * Asks an ACTIVE wallet to sign a 32-byte hash (bytes or hex) as is, and
   * waits for the result, as {@link SigilClient.createSignature} then
   * {@link SigilClient.waitForSignature}. `r`, `s`, `recoveryId`, `der` and
   * `ethereum` are in `result`.
   */
  signHash(walletId: string, hash: Uint8Array | string, options?: SignOptions): Promise<Signature>;

  /**
   * Asks an ACTIVE wallet to sign a message as an EIP-191 personal message
   * (what `personal_sign` does) and waits for the result:
   * {@link ethereumSignature} of it recovers the wallet's Ethereum address.
   */
  signMessage(walletId: string, message: string, options?: SignOptions): Promise<Signature>;

  /**
   * Asks an ACTIVE Ed25519 wallet to sign message bytes (or hex) as they are
   * and waits for the result: `result.ed25519` is the 64-byte RFC 8032
   * signature, e.g. of a Solana transaction message.
   */
  signRawMessage(walletId: string, message: Uint8Array | string, options?: SignOptions): Promise<Signature>;

  /** Returns one signature request; `Code.NotFound` if there is none. Needs `wallets:read`. */
  getSignature(signatureId: string, options?: CallOptions): Promise<Signature>;

  /**
   * Lists signature requests, oldest first, optionally of one wallet, fetching
   * pages as the iteration goes. Needs `wallets:read`.
   */
  listSignatures(options?: ListSignaturesOptions): PageIterable<Signature>;
}

/** Makes the transport used when the caller gives none (Node or browser). */
export type DefaultTransportFactory = (baseUrl: string, interceptors: Interceptor[]) => Transport;

/**
 * Builds a client over a given transport factory. `createSigilClient` from
 * `@sigil-wallet/sdk` calls it with the Node or browser transport; use it
 * directly only to plug in another default.
 */
export function createSigilClientWith(options: SigilClientOptions, defaultTransport: DefaultTransportFactory): SigilClient {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("sigil: createSigilClient needs options { baseUrl, token }");
  }
  const token = checkToken(options.token);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw new TypeError(`sigil: timeoutMs must be a number of milliseconds >= 0, got ${String(options.timeoutMs)}`);
  }
  let baseUrl: string | undefined;
  let inner: Transport;
  if (options.transport) {
    baseUrl = options.baseUrl;
    inner = options.transport;
  } else {
    baseUrl = checkBaseUrl(options.baseUrl);
    inner = defaultTransport(baseUrl, options.interceptors ?? []);
  }
  const service = createClient(WalletService, authorizedTransport(inner, token, timeoutMs, baseUrl));
  return new Sigil(service, options.requestKey);
}

function backendValue(b: BackendName | undefined): Backend {
  switch (b) {
    case undefined:
      return Backend.UNSPECIFIED;
    case "mpc":
      return Backend.MPC;
    case "hsm":
      return Backend.HSM;
    default:
      if (typeof b === "number" && Backend[b] !== undefined) return b;
      throw new ConnectError(`sigil: unknown backend ${JSON.stringify(b)}; use "mpc" or "hsm"`, Code.InvalidArgument);
  }
}

function callOptions(o: CallOptions | undefined): CallOptions {
  if (!o) return {};
  const out: CallOptions = {};
  if (o.signal !== undefined) out.signal = o.signal;
  if (o.timeoutMs !== undefined) out.timeoutMs = o.timeoutMs;
  if (o.headers !== undefined) out.headers = o.headers;
  return out;
}

/** The `wait` field for a hold of `holdMs` (none below one millisecond). */
function holdField(holdMs: number): Duration | undefined {
  return holdMs >= 1 ? durationFromMs(holdMs) : undefined;
}

function must<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new ConnectError(`sigil: the server's response has no ${what}`, Code.Internal);
  return v;
}

class Sigil implements SigilClient {
  constructor(
    readonly service: Client<typeof WalletService>,
    private readonly requestKey?: RequestKey,
  ) {}

  async createWallet(o: CreateWalletOptions = {}): Promise<Wallet> {
    const res = await this.service.createWallet(
      {
        name: o.name ?? "",
        backend: backendValue(o.backend),
        keyScheme: o.keyScheme ?? KeyScheme.UNSPECIFIED,
        externalId: o.externalId ?? "",
        parentWalletId: o.parentWalletId ?? "",
        derivationPath: o.derivationPath ?? "",
      },
      callOptions(o),
    );
    return must(res.wallet, "wallet");
  }

  async waitForWallet(walletId: string, o: WaitForWalletOptions = {}): Promise<Wallet> {
    const w = await poll(
      (call) => this.readWallet(walletId, call, call.holdMs),
      (w) => w.status !== WalletStatus.CREATING && w.status !== WalletStatus.UNSPECIFIED,
      (w) => `wallet ${walletId} is still ${WalletStatus[w.status] ?? w.status}`,
      DEFAULT_WALLET_WAIT_MS,
      o,
      o.onProgress ? (wallet, elapsedMs) => o.onProgress?.({ wallet, elapsedMs }) : undefined,
    );
    if (w.status === WalletStatus.FAILED) throw new WalletFailedError(w);
    return w;
  }

  async createWalletAndWait(o: CreateWalletOptions & WaitForWalletOptions = {}): Promise<Wallet> {
    const started = Date.now();
    const w = await this.createWallet(o);
    o.onProgress?.({ wallet: w, elapsedMs: Date.now() - started });
    if (w.status === WalletStatus.ACTIVE) return w;
    if (w.status === WalletStatus.FAILED) throw new WalletFailedError(w);
    return this.waitForWallet(w.id, o);
  }

  async getWallet(walletId: string, o?: CallOptions): Promise<Wallet> {
    return this.readWallet(walletId, o, 0);
  }

  /** Reads a wallet, asking the server to hold the call up to `holdMs` while it is CREATING. */
  private async readWallet(walletId: string, o: CallOptions | undefined, holdMs: number): Promise<Wallet> {
    const res = await this.service.getWallet({ id: walletId, wait: holdField(holdMs) }, callOptions(o));
    return must(res.wallet, "wallet");
  }

  listWallets(o: ListWalletsOptions = {}): PageIterable<Wallet> {
    return pager(async (pageToken) => {
      const res = await this.service.listWallets(
        {
          pageSize: o.pageSize ?? 0,
          pageToken,
          status: o.status ?? WalletStatus.UNSPECIFIED,
          parentWalletId: o.parentWalletId ?? "",
        },
        callOptions(o),
      );
      return { items: res.wallets, nextPageToken: res.nextPageToken };
    }, o.pageToken ?? "");
  }

  async createSignature(o: CreateSignatureOptions): Promise<Signature> {
    if (typeof o !== "object" || o === null) {
      throw new ConnectError("sigil: createSignature needs { walletId, hash | message }", Code.InvalidArgument);
    }
    let payload:
      | { case: "hash"; value: Uint8Array }
      | { case: "message"; value: string }
      | { case: "rawMessage"; value: Uint8Array };
    const given = [o.hash, o.message, o.rawMessage].filter((v) => v !== undefined).length;
    if (given > 1) {
      throw new ConnectError("sigil: give one of a hash, a message or a raw message to sign, not several", Code.InvalidArgument);
    } else if (o.rawMessage !== undefined) {
      const raw = messageBytes(o.rawMessage);
      if (raw.length === 0) throw new ConnectError("sigil: the raw message to sign is empty", Code.InvalidArgument);
      payload = { case: "rawMessage", value: raw };
    } else if (o.hash !== undefined) {
      payload = { case: "hash", value: hashBytes(o.hash) };
    } else if (typeof o.message === "string" && o.message !== "") {
      payload = { case: "message", value: o.message };
    } else {
      throw new ConnectError("sigil: nothing to sign: give a 32-byte hash or a non-empty message", Code.InvalidArgument);
    }
    let requestSignature: MessageInitShape<typeof RequestSignatureSchema> | undefined;
    if (this.requestKey) {
      let digest: Uint8Array;
      let kind: "hash" | "eip191" | "raw-message";
      if (payload.case === "rawMessage") {
        // Ed25519 signs the message itself; the request binds its SHA-256.
        digest = new Uint8Array(await crypto.subtle.digest("SHA-256", payload.value as Uint8Array<ArrayBuffer>));
        kind = "raw-message";
      } else if (payload.case === "hash") {
        digest = payload.value;
        kind = "hash";
      } else {
        digest = eip191Digest(payload.value);
        kind = "eip191";
      }
      const signed = await this.requestKey.sign({ walletId: o.walletId, kind, digest, externalId: o.externalId ?? "" }, o.requestId);
      requestSignature = {
        requestId: signed.requestId,
        createTime: timestampFromMs(signed.createTimeMs),
        algorithm: signed.algorithm,
        publicKey: signed.publicKey,
        signature: signed.signature,
      };
    }
    const res = await this.service.createSignature(
      { walletId: o.walletId, externalId: o.externalId ?? "", payload, requestSignature },
      callOptions(o),
    );
    return must(res.signature, "signature");
  }

  async waitForSignature(signatureId: string, o: WaitForSignatureOptions = {}): Promise<Signature> {
    const s = await poll(
      (call) => this.readSignature(signatureId, call, call.holdMs),
      (s) => s.status !== SignatureStatus.PENDING && s.status !== SignatureStatus.UNSPECIFIED,
      (s) => `signature ${signatureId} is still ${SignatureStatus[s.status] ?? s.status}`,
      DEFAULT_SIGNATURE_WAIT_MS,
      o,
      o.onProgress ? (signature, elapsedMs) => o.onProgress?.({ signature, elapsedMs }) : undefined,
    );
    return settledSignature(s);
  }

  async signHash(walletId: string, hash: Uint8Array | string, o: SignOptions = {}): Promise<Signature> {
    return this.signAndWait({ ...o, walletId, hash }, o);
  }

  async signMessage(walletId: string, message: string, o: SignOptions = {}): Promise<Signature> {
    if (typeof message !== "string" || message === "") {
      throw new ConnectError("sigil: the message to sign must be a non-empty string", Code.InvalidArgument);
    }
    return this.signAndWait({ ...o, walletId, message }, o);
  }

  async signRawMessage(walletId: string, message: Uint8Array | string, o: SignOptions = {}): Promise<Signature> {
    return this.signAndWait({ ...o, walletId, rawMessage: message }, o);
  }

  private async signAndWait(req: CreateSignatureOptions, o: WaitForSignatureOptions): Promise<Signature> {
    const started = Date.now();
    const s = await this.createSignature(req);
    o.onProgress?.({ signature: s, elapsedMs: Date.now() - started });
    if (s.status === SignatureStatus.PENDING || s.status === SignatureStatus.UNSPECIFIED) {
      return this.waitForSignature(s.id, o);
    }
    return settledSignature(s);
  }

  async getSignature(signatureId: string, o?: CallOptions): Promise<Signature> {
    return this.readSignature(signatureId, o, 0);
  }

  /** Reads a signature request, asking the server to hold the call up to `holdMs` while it is PENDING. */
  private async readSignature(signatureId: string, o: CallOptions | undefined, holdMs: number): Promise<Signature> {
    const res = await this.service.getSignature({ id: signatureId, wait: holdField(holdMs) }, callOptions(o));
    return must(res.signature, "signature");
  }

  listSignatures(o: ListSignaturesOptions = {}): PageIterable<Signature> {
    return pager(async (pageToken) => {
      const res = await this.service.listSignatures(
        { walletId: o.walletId ?? "", pageSize: o.pageSize ?? 0, pageToken },
        callOptions(o),
      );
      return { items: res.signatures, nextPageToken: res.nextPageToken };
    }, o.pageToken ?? "");
  }
}

function settledSignature(s: Signature): Signature {
  if (s.status === SignatureStatus.SIGNED) return s;
  throw new SignatureFailedError(s);
}

/// <reference types="vite/client" />
// The web example: list wallets, create one and sign a message with the
// Sigil SDK over Connect-Web. Plain DOM code so that the SDK calls stand out.
import {
  Backend,
  Code,
  createSigilClient,
  errorCode,
  ethereumSignature,
  isWalletFailed,
  RequestKey,
  WalletStatus,
  type SigilClient,
  type Wallet,
} from "@sigil-wallet/sdk";

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};

const apiUrl = $<HTMLInputElement>("api-url");
const token = $<HTMLInputElement>("token");
const requestKeyPem = $<HTMLTextAreaElement>("request-key");
const connectionStatus = $("connection-status");
const refreshButton = $<HTMLButtonElement>("refresh");
const walletRows = $<HTMLTableElement>("wallets").tBodies[0]!;
const walletCount = $("wallet-count");
const createButton = $<HTMLButtonElement>("create-wallet");
const cancelButton = $<HTMLButtonElement>("cancel-create");
const createStatus = $("create-status");
const signWallet = $<HTMLSelectElement>("sign-wallet");
const signButton = $<HTMLButtonElement>("sign");
const signStatus = $("sign-status");
const errorBox = $("error");

let sigil: SigilClient | undefined;
let creating: AbortController | undefined;

// Defaults: ?api=...&token=... in the URL, else VITE_SIGIL_API_URL /
// VITE_SIGIL_TOKEN at `vite` start, else what this tab used last.
const params = new URLSearchParams(location.search);
apiUrl.value =
  params.get("api") ?? import.meta.env.VITE_SIGIL_API_URL ?? sessionStorage.getItem("sigil.api") ?? "http://127.0.0.1:8080";
token.value = params.get("token") ?? import.meta.env.VITE_SIGIL_TOKEN ?? sessionStorage.getItem("sigil.token") ?? "";

function showError(err: unknown): void {
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  // A ConnectError's message starts with its code, e.g. "[unavailable] ...".
  errorBox.textContent = message;
  errorBox.dataset.code = Code[code];
  errorBox.hidden = false;
}

function clearError(): void {
  errorBox.hidden = true;
  errorBox.textContent = "";
  delete errorBox.dataset.code;
}

function status(w: Wallet): string {
  return WalletStatus[w.status] ?? String(w.status);
}

async function refresh(): Promise<void> {
  if (!sigil) return;
  const wallets: Wallet[] = [];
  // listWallets fetches pages lazily as the loop asks for more.
  for await (const w of sigil.listWallets({ pageSize: 50 })) wallets.push(w);
  walletRows.replaceChildren(
    ...wallets.map((w) => {
      const tr = document.createElement("tr");
      tr.dataset.walletId = w.id;
      for (const [text, cls] of [
        [w.id, "id"],
        [w.name, "name"],
        [Backend[w.backend] ?? "", "backend"],
        [status(w), status(w)],
        [w.addresses?.ethereum ?? "", "address"],
      ] as const) {
        const td = document.createElement("td");
        td.textContent = text;
        td.className = cls;
        tr.append(td);
      }
      return tr;
    }),
  );
  walletCount.textContent = `(${wallets.length})`;
  walletCount.dataset.count = String(wallets.length);
  const active = wallets.filter((w) => w.status === WalletStatus.ACTIVE);
  const keep = signWallet.value;
  signWallet.replaceChildren(
    ...active.map((w) => {
      const o = document.createElement("option");
      o.value = w.id;
      o.textContent = `${w.name || w.id} — ${w.addresses?.ethereum ?? ""}`;
      o.dataset.address = w.addresses?.ethereum ?? "";
      return o;
    }),
  );
  if (active.some((w) => w.id === keep)) signWallet.value = keep;
  signButton.disabled = active.length === 0;
}

$<HTMLFormElement>("connect-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  clearError();
  sigil = undefined;
  connectionStatus.textContent = "Connecting…";
  connectionStatus.dataset.state = "connecting";
  // A request key (the PEM `sigil request-key init` writes, or the dev one
  // in dev.json's request_key_file) signs every signature request with
  // WebCrypto, for signers that require signed requests.
  const pem = requestKeyPem.value.trim();
  (pem ? RequestKey.fromPem(pem) : Promise.resolve(undefined))
    .then((requestKey) => {
      // Throws at once on a missing token or a malformed URL.
      sigil = createSigilClient({ baseUrl: apiUrl.value.trim(), token: token.value.trim(), timeoutMs: 15_000, requestKey });
      return refresh();
    })
    .then(() => {
      sessionStorage.setItem("sigil.api", apiUrl.value.trim());
      sessionStorage.setItem("sigil.token", token.value.trim());
      connectionStatus.textContent = `Connected to ${apiUrl.value.trim()}.`;
      connectionStatus.dataset.state = "connected";
      refreshButton.disabled = false;
      createButton.disabled = false;
    })
    .catch((err: unknown) => {
      sigil = undefined;
      connectionStatus.textContent = "Not connected.";
      connectionStatus.dataset.state = "error";
      showError(err);
    });
});

refreshButton.addEventListener("click", () => {
  clearError();
  refresh().catch(showError);
});

$<HTMLFormElement>("create-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (!sigil) return;
  clearError();
  const backend = $<HTMLSelectElement>("backend").value as "" | "mpc" | "hsm";
  creating = new AbortController();
  createButton.disabled = true;
  cancelButton.disabled = false;
  $("created").hidden = true;
  createStatus.dataset.state = "creating";
  createStatus.textContent = "Creating…";
  sigil
    .createWalletAndWait({
      name: $<HTMLInputElement>("wallet-name").value,
      ...(backend ? { backend } : {}),
      signal: creating.signal,
      onProgress: ({ wallet, elapsedMs }) => {
        createStatus.textContent = `${wallet.id}: ${status(wallet)} (${Math.round(elapsedMs / 1000)} s)`;
      },
    })
    .then(async (w) => {
      createStatus.textContent = `${w.id}: ${status(w)}`;
      createStatus.dataset.state = status(w);
      $("created-wallet-id").textContent = w.id;
      $("created-wallet-address").textContent = w.addresses?.ethereum ?? "";
      $("created").hidden = false;
      await refresh();
      signWallet.value = w.id;
    })
    .catch((err: unknown) => {
      createStatus.dataset.state = isWalletFailed(err) ? "FAILED" : "error";
      createStatus.textContent = "Wallet not created.";
      showError(err);
    })
    .finally(() => {
      createButton.disabled = false;
      cancelButton.disabled = true;
      creating = undefined;
    });
});

cancelButton.addEventListener("click", () => creating?.abort(new Error("cancelled on the page")));

$<HTMLFormElement>("sign-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (!sigil || !signWallet.value) return;
  clearError();
  const walletId = signWallet.value;
  const address = signWallet.selectedOptions[0]?.dataset.address ?? "";
  const message = $<HTMLTextAreaElement>("message").value;
  signButton.disabled = true;
  $("signed").hidden = true;
  signStatus.dataset.state = "signing";
  signStatus.textContent = "Signing…";
  sigil
    .signMessage(walletId, message, {
      onProgress: ({ signature, elapsedMs }) => {
        signStatus.textContent = `${signature.id}: pending (${Math.round(elapsedMs / 1000)} s)`;
      },
    })
    .then((s) => {
      signStatus.textContent = "Signed.";
      signStatus.dataset.state = "SIGNED";
      $("signature-id").textContent = s.id;
      $("signer-address").textContent = address;
      $("signature").textContent = ethereumSignature(s);
      $("signed").hidden = false;
    })
    .catch((err: unknown) => {
      signStatus.textContent = "Not signed.";
      signStatus.dataset.state = "error";
      showError(err);
    })
    .finally(() => {
      signButton.disabled = false;
    });
});

// Package sigil is the Go client of Sigil, the self-hosted wallet signing
// platform. It wraps the generated WalletService client
// (github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1/walletv1connect)
// with what every caller otherwise writes again: the bearer token, a default
// timeout per call, HTTP/2 without TLS for http:// URLs, helpers that create a
// wallet or a signature and wait until it is finished, iterators over every
// page of a list, and predicates telling common errors apart.
//
// A wallet is created in status CREATING while its key is generated (tens of
// seconds for an MPC signer group, milliseconds for an HSM), then becomes
// ACTIVE or FAILED. A signature request starts PENDING and ends SIGNED,
// REJECTED or FAILED. The helpers poll until the end state:
//
//	client, err := sigil.New("http://127.0.0.1:8080", sigil.WithToken(os.Getenv("SIGIL_TOKEN")))
//	if err != nil { ... }
//	wallet, err := client.CreateWalletAndWait(ctx, sigil.CreateWalletOptions{Name: "treasury"}, sigil.WaitOptions{})
//	if err != nil { ... }
//	sig, err := client.SignMessage(ctx, wallet.GetId(), "hello", sigil.SignOptions{})
//	if err != nil { ... }
//	fmt.Printf("0x%x\n", sig.GetResult().GetEthereum())
//
// Every error from the server is a *connect.Error carrying the code and
// message the server sent; IsNotFound, IsPermissionDenied and the other Is
// functions test the code, and Reason returns the machine-readable reason
// the server attached (walletv1.ErrorReason_ERROR_REASON_WALLET_NOT_ACTIVE,
// ..._IDEMPOTENCY_CONFLICT, ...), for code that must tell apart errors that
// share a code. A wallet whose key generation failed gives a
// *WalletFailedError, a signature that was refused or failed a
// *SignatureFailedError.
//
// The TypeScript SDK (sdk/ts, @sigil-wallet/sdk) offers the same operations
// under matching names; sdk/README.md lists them side by side.
package sigil

module github.com/sigil-wallet/sigil/sdk/go

go 1.26.8

require (
	connectrpc.com/connect v1.21.1
	github.com/sigil-wallet/sigil/gen v0.0.0-00010101000000-000000000000
	golang.org/x/crypto v0.55.0
	google.golang.org/protobuf v1.36.12
)

require (
	buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go v1.36.12-20260825204119-511051f7f437.1 // indirect
	golang.org/x/sys v0.47.0 // indirect
)

// gen is released with the SDK from this repository; in a checkout the
// SDK builds against the generated code next to it.
replace github.com/sigil-wallet/sigil/gen => ../../gen

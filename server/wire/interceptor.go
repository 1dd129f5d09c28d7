package wire

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"buf.build/go/protovalidate"
	"connectrpc.com/connect"
	"connectrpc.com/validate"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// HandlerOptions are the options every handler of both ports takes: the
// strict JSON codecs, then the given interceptors (authentication, roles,
// metrics) between the error mapper (outermost, so it sees every error) and
// validation (innermost, just before the handler).
func HandlerOptions(logger *slog.Logger, interceptors ...connect.Interceptor) []connect.HandlerOption {
	all := append([]connect.Interceptor{errorInterceptor{logger: logger}}, interceptors...)
	all = append(all, validationInterceptor{inner: validate.NewInterceptor()})
	return []connect.HandlerOption{
		connect.WithCodec(StrictJSON(codecNameJSON)),
		connect.WithCodec(StrictJSON(codecNameJSONUTF8)),
		connect.WithInterceptors(all...),
		// Compressing a few hundred bytes costs more CPU than it saves.
		connect.WithCompressMinBytes(compressMinBytes),
	}
}

// compressMinBytes is the smallest response compressed for a client that
// accepts compression.
const compressMinBytes = 1024

// errorInterceptor maps every error a handler or an inner interceptor
// returns with ToConnect, so each carries a reason.
type errorInterceptor struct{ logger *slog.Logger }

func (e errorInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		if err != nil {
			return nil, ToConnect(ctx, e.logger, err)
		}
		return res, nil
	}
}

func (e errorInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (e errorInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		return ToConnect(ctx, e.logger, next(ctx, conn))
	}
}

// validationInterceptor enforces the protovalidate rules; a violation is
// InvalidArgument naming the field and the rule. When a bytes field of a
// JSON request breaks a rule, the message adds that JSON bytes are base64:
// hex sent by mistake decodes as base64 to the wrong length.
type validationInterceptor struct{ inner *validate.Interceptor }

func (v validationInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	inner := v.inner.WrapUnary(next)
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := inner(ctx, req)
		if err != nil && isJSON(req.Header().Get("Content-Type")) {
			err = base64Hint(err)
		}
		return res, err
	}
}

func (v validationInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (v validationInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return v.inner.WrapStreamingHandler(next)
}

func isJSON(contentType string) bool { return strings.Contains(contentType, "json") }

const base64Note = "; JSON bytes fields are base64 (standard or URL-safe), not hex"

// base64Hint adds base64Note to a validation error on a bytes field.
func base64Hint(err error) error {
	var ve *protovalidate.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	for _, viol := range ve.Violations {
		if fd := viol.FieldDescriptor; fd != nil && fd.Kind() == protoreflect.BytesKind {
			out := connect.NewError(connect.CodeOf(err), hinted{err})
			var ce *connect.Error
			if errors.As(err, &ce) {
				for _, d := range ce.Details() {
					out.AddDetail(d)
				}
			}
			return out
		}
	}
	return err
}

// hinted is a validation error with base64Note appended.
type hinted struct{ err error }

func (h hinted) Error() string {
	var ce *connect.Error
	if errors.As(h.err, &ce) {
		return ce.Message() + base64Note
	}
	return h.err.Error() + base64Note
}

func (h hinted) Unwrap() error { return h.err }

package wire

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The names Connect registers its JSON codec under; StrictJSON replaces
// both.
const (
	codecNameJSON     = "json"
	codecNameJSONUTF8 = "json; charset=utf-8"
)

// StrictJSON returns a JSON codec that refuses unknown fields and unknown
// enum names, where Connect's default codec drops them silently: a custody
// API must not create an MPC wallet for a caller who asked for
// "backend": "hsm". Its errors name the field and, for enums, the names
// that are accepted.
func StrictJSON(name string) connect.Codec { return strictJSON{name: name} }

type strictJSON struct{ name string }

func (c strictJSON) Name() string { return c.name }

func (c strictJSON) Marshal(message any) ([]byte, error) {
	m, ok := message.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a protobuf message", message)
	}
	return protojson.MarshalOptions{}.Marshal(m)
}

func (c strictJSON) Unmarshal(data []byte, message any) error {
	m, ok := message.(proto.Message)
	if !ok {
		return fmt.Errorf("%T is not a protobuf message", message)
	}
	if len(data) == 0 {
		return errors.New("empty body: want a JSON object")
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(data, m); err != nil {
		return explainJSON(err, m.ProtoReflect().Descriptor())
	}
	return nil
}

var (
	enumFieldRE  = regexp.MustCompile(`invalid value for enum field (\w+)`)
	bytesFieldRE = regexp.MustCompile(`invalid value for bytes field (\w+)`)
)

// explainJSON turns a protojson error into a message for the caller:
// without the "proto:" prefix, with the accepted names of an enum, and with
// a reminder that bytes are base64.
func explainJSON(err error, md protoreflect.MessageDescriptor) error {
	msg := strings.TrimPrefix(err.Error(), "proto: ")
	msg = strings.TrimPrefix(msg, "proto:\u00a0") // protojson randomises this space
	if m := enumFieldRE.FindStringSubmatch(msg); m != nil {
		if names := enumNames(md, m[1]); names != "" {
			msg += " (want one of " + names + ")"
		}
	}
	if bytesFieldRE.MatchString(msg) {
		msg += base64Note
	}
	return fmt.Errorf("invalid JSON for %s: %s", md.FullName(), msg)
}

// enumNames lists the value names of the enum field called name (its proto
// or JSON name) in md, or "" when md has no such field.
func enumNames(md protoreflect.MessageDescriptor, name string) string {
	fd := md.Fields().ByName(protoreflect.Name(name))
	if fd == nil {
		fd = md.Fields().ByJSONName(name)
	}
	if fd == nil || fd.Enum() == nil {
		return ""
	}
	values := fd.Enum().Values()
	names := make([]string, values.Len())
	for i := range values.Len() {
		names[i] = string(values.Get(i).Name())
	}
	return strings.Join(names, ", ")
}

func (c strictJSON) IsBinary() bool { return false }

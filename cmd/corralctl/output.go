package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// jsonValue converts a message to plain JSON data. protojson's own output is
// deliberately unstable (its spacing varies), so it is re-encoded with
// encoding/json, which sorts keys: the result is byte-for-byte stable.
// Field names are the proto names (snake_case); every field is present; 64-bit
// integers are strings, per the proto3 JSON mapping.
func jsonValue(m proto.Message) (any, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// writeJSON prints v (plain data or messages, see jsonList) indented.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("json output: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// jsonList converts messages to a JSON array value.
func jsonList[M proto.Message](ms []M) ([]any, error) {
	out := make([]any, 0, len(ms))
	for _, m := range ms {
		v, err := jsonValue(m)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func writeJSONList[M proto.Message](w io.Writer, ms []M) error {
	v, err := jsonList(ms)
	if err != nil {
		return err
	}
	return writeJSON(w, v)
}

// writeJSONLine prints v compactly on one line.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("json output: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

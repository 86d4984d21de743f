package control

import (
	"bytes"
	"encoding/json"
)

func frame(b []byte) []byte {
	var buf bytes.Buffer
	WriteFrame(&buf, b)
	return buf.Bytes()
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

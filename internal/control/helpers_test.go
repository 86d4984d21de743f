package control

import (
	"bytes"
	"encoding/json"
	"io"
)

func frame(b []byte) []byte {
	var buf bytes.Buffer
	WriteFrame(&buf, b)
	return buf.Bytes()
}

func jsonRequest(cmd string) ([]byte, error) { return json.Marshal(Request{Command: cmd}) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// pipe reads from r and writes to w.
type pipe struct {
	r io.Reader
	w *bytes.Buffer
}

func (p *pipe) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipe) Write(b []byte) (int, error) { return p.w.Write(b) }

// askFrom decodes a response already in rw's reader into out.
func askFrom(rw *pipe, out any) error {
	b, err := ReadFrame(rw)
	if err != nil {
		return err
	}
	var resp Response
	if err := json.Unmarshal(b, &resp); err != nil {
		return err
	}
	return json.Unmarshal(resp.Result, out)
}

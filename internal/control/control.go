// Package control is the daemon's local control socket: a unix stream
// socket over which a local program asks for the client's status and
// sources. It is read-only: no command changes anything.
//
// Each request and each response is one frame: a 4-byte big-endian length,
// then that many bytes of JSON, at most MaxFrame. A request is
// {"command": "status"} or {"command": "sources"}; a response is
// {"ok": true, "result": ...} or {"ok": false, "error": "..."}. A
// connection carries one request and its response, within a deadline;
// at most MaxConns are served at once, and others are closed at once.
package control

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Limits of the protocol.
const (
	MaxFrame = 1 << 20
	MaxConns = 8
)

// ErrFrame is wrapped by every error about a frame.
var ErrFrame = errors.New("control: bad frame")

// ReadFrame reads one frame from r.
func ReadFrame(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFrame, err)
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > MaxFrame {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrFrame, size, MaxFrame)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFrame, err)
	}
	return b, nil
}

// WriteFrame writes b as one frame.
func WriteFrame(w io.Writer, b []byte) error {
	if len(b) > MaxFrame {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrFrame, len(b), MaxFrame)
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	if _, err := w.Write(append(n[:], b...)); err != nil {
		return err
	}
	return nil
}

// Request is a request frame's content.
type Request struct {
	Command string `json:"command"`
}

// Response is a response frame's content.
type Response struct {
	OK     bool            `json:"ok"`
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// Handler answers a command with a value to encode as JSON.
type Handler func(command string) (any, error)

// Handle reads one request from r, answers it with h and writes the
// response to w. It returns an error only if the response could not be
// written; a bad request gets an error response.
func Handle(r io.Reader, w io.Writer, h Handler) error {
	resp := Response{}
	if b, err := ReadFrame(r); err != nil {
		resp.Error = err.Error()
	} else {
		var req Request
		if err := json.Unmarshal(b, &req); err != nil {
			resp.Error = "control: request is not JSON: " + err.Error()
		} else if v, err := h(req.Command); err != nil {
			resp.Error = err.Error()
		} else if raw, err := json.Marshal(v); err != nil {
			resp.Error = "control: " + err.Error()
		} else {
			resp.OK, resp.Result = true, raw
		}
	}
	out, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	return WriteFrame(w, out)
}

// Ask sends command over rw and decodes the response's result into out.
func Ask(rw io.ReadWriter, command string, out any) error {
	req, err := json.Marshal(Request{Command: command})
	if err != nil {
		return err
	}
	if err := WriteFrame(rw, req); err != nil {
		return err
	}
	b, err := ReadFrame(rw)
	if err != nil {
		return err
	}
	var resp Response
	if err := json.Unmarshal(b, &resp); err != nil {
		return fmt.Errorf("%w: response is not JSON: %v", ErrFrame, err)
	}
	if !resp.OK {
		return errors.New(resp.Error)
	}
	return json.Unmarshal(resp.Result, out)
}

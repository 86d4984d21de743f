package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// Deadline bounds one connection: a client that sends its request a byte
// a second is cut off.
const Deadline = 5 * time.Second

// Listen creates the control socket at path, mode 0660. A socket file
// already at path is removed only if nothing answers on it (a stale socket
// from a daemon that died); a live one, or any other kind of file, is an
// error.
func Listen(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control: %s is in use by a running daemon", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control: remove stale %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	return ln, nil
}

// Serve answers connections on ln with h until ctx is done, then closes
// ln and waits for the connections under way.
func Serve(ctx context.Context, ln net.Listener, h Handler) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, MaxConns)
	// The closer exits when ctx is done, after closing ln.
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				wg.Wait()
				return
			}
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			c.Close() // MaxConns already: refuse rather than queue
			continue
		}
		wg.Add(1)
		// The connection's goroutine exits by Deadline at the latest.
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			defer c.Close()
			// A failed deadline or write leaves nothing to do but close.
			_ = c.SetDeadline(time.Now().Add(Deadline))
			_ = Handle(c, c, h)
		}()
	}
}

// Query connects to the control socket at path and asks command.
func Query(path, command string, out any) error {
	c, err := net.DialTimeout("unix", path, Deadline)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	defer c.Close()
	// The deadline bounds the exchange; setting it cannot fail on a
	// fresh connection in a way that matters.
	_ = c.SetDeadline(time.Now().Add(Deadline))
	return Ask(c, command, out)
}

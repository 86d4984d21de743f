package privsep

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/meridian-ntp/meridian/internal/clock"
	"github.com/meridian-ntp/meridian/internal/ntp"
)

// KeeperClock is the clock the engine steers when a keeper holds the
// power to: it reads the system clock itself (no privilege needed) and
// asks the keeper, over conn, for every change. It is safe for
// concurrent use.
type KeeperClock struct {
	// Timeout bounds each round trip (default 5 s).
	Timeout time.Duration

	// mu guards the fields below and serializes the round trips.
	mu   sync.Mutex
	conn net.Conn
	seq  uint32
	in   [ResponseLen + 1]byte
	out  [RequestLen]byte
}

var _ clock.Clock = (*KeeperClock)(nil)

// NewKeeperClock returns a clock that asks the keeper at the other end of
// conn, a SOCK_SEQPACKET socket.
func NewKeeperClock(conn net.Conn) *KeeperClock { return &KeeperClock{conn: conn} }

// ErrRefused: the keeper refused the request, as invalid or against its
// policy.
var ErrRefused = errors.New("privsep: the clock keeper refused the request")

// do sends r and waits for its answer.
func (c *KeeperClock) do(r Request) (Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	r.Seq = c.seq
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	// A deadline error comes back from the write or read below.
	_ = c.conn.SetDeadline(time.Now().Add(timeout))
	if _, err := c.conn.Write(r.Encode(c.out[:])); err != nil {
		return Response{}, fmt.Errorf("privsep: clock request: %w", err)
	}
	var resp Response
	for {
		n, err := c.conn.Read(c.in[:])
		if err != nil {
			return Response{}, fmt.Errorf("privsep: clock request: %w", err)
		}
		if resp, err = DecodeResponse(c.in[:n]); err != nil {
			return Response{}, err
		}
		// The late answer to an earlier request, which timed out, is
		// passed over.
		if int32(resp.Seq-r.Seq) < 0 {
			continue
		}
		break
	}
	if resp.Seq != r.Seq || resp.Op != r.Op && resp.Status != StatusInvalid {
		return Response{}, fmt.Errorf("privsep: answer %d (%v) to request %d (%v)", resp.Seq, resp.Op, r.Seq, r.Op)
	}
	switch resp.Status {
	case StatusOK:
		return resp, nil
	case StatusFailed:
		return resp, fmt.Errorf("privsep: the clock keeper failed to %v", r.Op)
	}
	return resp, fmt.Errorf("%w (%v: %v)", ErrRefused, r.Op, resp.Status)
}

// Now reads the system clock.
func (c *KeeperClock) Now() time.Time { return time.Now() }

// FromSystem returns t: the keeper steers the system clock.
func (c *KeeperClock) FromSystem(t time.Time) time.Time { return t }

// SetFrequency asks the keeper to set the frequency correction.
func (c *KeeperClock) SetFrequency(ppm float64) error {
	_, err := c.do(Request{Op: OpFrequency, FreqPPM: ppm})
	return err
}

// Frequency asks the keeper for the frequency correction.
func (c *KeeperClock) Frequency() (float64, error) {
	r, err := c.do(Request{Op: OpGetFrequency})
	return r.FreqPPM, err
}

// Step asks the keeper to step the clock.
func (c *KeeperClock) Step(d time.Duration) error {
	_, err := c.do(Request{Op: OpStep, Step: d})
	return err
}

// SetLeap asks the keeper to arm or disarm a leap second.
func (c *KeeperClock) SetLeap(l ntp.Leap) error {
	_, err := c.do(Request{Op: OpLeap, Leap: l})
	return err
}

// SetStatus asks the keeper to record the synchronization status.
func (c *KeeperClock) SetStatus(synced bool, maxErr, estErr time.Duration) error {
	_, err := c.do(Request{Op: OpStatus, Synced: synced, MaxErr: min(maxErr, maxErrLimit), EstErr: min(estErr, maxErrLimit)})
	return err
}

// SocketPair returns the two ends of a new SOCK_SEQPACKET unix socket
// pair, close-on-exec: one for the keeper, one (or its file, handed to a
// child process) for the engine.
func SocketPair() (a, b *net.UnixConn, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("privsep: socketpair: %w", err)
	}
	conns := make([]*net.UnixConn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "privsep")
		c, err := net.FileConn(f)
		f.Close() // FileConn holds its own copy
		if err != nil {
			if i == 0 {
				syscall.Close(fds[1])
			} else {
				conns[0].Close()
			}
			return nil, nil, fmt.Errorf("privsep: socketpair: %w", err)
		}
		conns[i] = c.(*net.UnixConn)
	}
	return conns[0], conns[1], nil
}

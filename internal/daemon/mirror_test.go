package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/config"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/query"
	"github.com/meridian-ntp/meridian/internal/source"
)

// waitQuery queries addr until ok accepts the result or 10 s pass, and
// returns the last result.
func waitQuery(t *testing.T, addr string, ok func(query.Result) bool) (query.Result, bool) {
	t.Helper()
	var r query.Result
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		r = query.One(context.Background(), addr, queryConfig())
		if ok(r) {
			return r, true
		}
	}
	return r, false
}

// TestMirrorOfAnotherServer runs one daemon at local stratum 3 and a second
// that mirrors it: the mirror serves stratum 4 with the upstream's address
// as reference ID, keeps serving for UnsyncAfter once the upstream is gone,
// then answers as unsynchronized.
func TestMirrorOfAnotherServer(t *testing.T) {
	up, _ := startDaemon(t, func(c *config.Config) { c.Server.LocalStratum = 3 })
	upAddr := up.Addrs()[0]
	const unsyncAfter = 3 * time.Second
	m, logs := startDaemon(t, func(c *config.Config) {
		c.Server.LocalStratum = 0
		c.Mirror = config.Mirror{Upstream: upAddr.String(), Poll: 250 * time.Millisecond, UnsyncAfter: unsyncAfter}
	})
	addr := m.Addrs()[0].String()

	r, ok := waitQuery(t, addr, func(r query.Result) bool { return r.Err == nil })
	if !ok {
		t.Fatalf("mirror never synchronized: %v\n%s", r.Err, logs)
	}
	h := r.Sample.Header
	if h.Stratum != 4 || h.RefID != ntp.RefIDFromAddr(upAddr.Addr()) || h.Leap != ntp.LeapNone {
		t.Errorf("mirror serves stratum %d refid %v leap %v; want 4, %v, none", h.Stratum, h.RefID, h.Leap, upAddr.Addr())
	}
	// The upstream serves zero root delay and dispersion; the mirror adds
	// its measured delay and the precisions of both clocks.
	if h.RootDelay == 0 || h.RootDisp == 0 || h.RootDelay.Duration() > time.Second || h.RootDisp.Duration() > time.Second {
		t.Errorf("root delay %v, dispersion %v; want above zero and below 1 s", h.RootDelay.Duration(), h.RootDisp.Duration())
	}

	up.Stop()
	stopped := time.Now()
	if r := query.One(context.Background(), addr, queryConfig()); r.Err != nil && time.Since(stopped) < unsyncAfter {
		t.Errorf("mirror stopped serving at once when its upstream stopped: %v", r.Err)
	}
	r, ok = waitQuery(t, addr, func(r query.Result) bool { return errors.Is(r.Err, source.ErrUnsynchronized) })
	if !ok {
		t.Fatalf("mirror still serving 10 s after its upstream stopped: %+v %v", r.Sample.Header, r.Err)
	}
	if took := time.Since(stopped); took < unsyncAfter-time.Second {
		t.Errorf("mirror unsynchronized %v after its upstream stopped; want about %v", took, unsyncAfter)
	}
	for _, want := range []string{"mirror synchronized", "mirror unsynchronized"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

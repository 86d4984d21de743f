package daemon

import (
	"context"
	"log/slog"
	"math"
	"time"

	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/query"
	"github.com/meridian-ntp/meridian/internal/server"
)

// localRefresh is how often the local-clock provider renews its
// reference timestamp, which keeps the served root dispersion from growing.
const localRefresh = time.Second

// runLocal renews the local clock's state at stratum (chrony's "local
// stratum N") every localRefresh until ctx is done. The first state is
// stored by the caller; with stratum 0 the server stays unsynchronized and
// there is nothing to renew.
func runLocal(ctx context.Context, served *Served, stratum int, precision int8) {
	if stratum == 0 {
		return
	}
	t := time.NewTicker(localRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			served.Store(server.Local(uint8(stratum), precision, ntp.TimeFrom(time.Now())))
		}
	}
}

// mirrorConfig configures runMirror.
type mirrorConfig struct {
	Upstream    string // host:port
	Poll        time.Duration
	UnsyncAfter time.Duration
	Precision   int8
	Origin      time.Time // zero of the monotonic clock
	Log         *slog.Logger
}

// runMirror polls the upstream every Poll and publishes what it serves
// through the mirror until ctx is done.
func runMirror(ctx context.Context, served *Served, c mirrorConfig) {
	m := &server.Mirror{UnsyncAfter: c.UnsyncAfter, Precision: c.Precision}
	served.Store(m.Failure(0))
	qc := query.Config{Count: 1, Timeout: min(c.Poll, time.Second)}
	synced := false
	t := time.NewTicker(c.Poll)
	defer t.Stop()
	for {
		r := query.One(ctx, c.Upstream, qc)
		now := mono.Instant(time.Since(c.Origin))
		var st *server.State
		if r.Err != nil {
			if ctx.Err() != nil {
				return
			}
			st = m.Failure(now)
			c.Log.Debug("mirror poll failed", "upstream", c.Upstream, "err", r.Err)
		} else {
			st = m.Sample(now, r.Addr.Addr(), r.Sample, ntp.TimeFrom(time.Now()))
		}
		served.Store(st)
		if nowSynced := st.Leap != ntp.LeapUnsync; nowSynced != synced {
			synced = nowSynced
			logMirror(c.Log, c.Upstream, r, st)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func logMirror(log *slog.Logger, upstream string, r query.Result, st *server.State) {
	if st.Leap == ntp.LeapUnsync {
		log.Warn("mirror unsynchronized: serving leap 3, stratum 16", "upstream", upstream, "last_error", errString(r.Err))
		return
	}
	log.Info("mirror synchronized", "upstream", upstream, "address", r.Addr,
		"stratum", st.Stratum, "offset", r.Sample.Offset, "delay", r.Sample.Delay)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// measurePrecision estimates the precision of the system clock as the log2
// of the smallest nonzero step between successive readings, in seconds, as
// RFC 5905 §7.3 describes the precision field.
func measurePrecision() int8 {
	best := time.Duration(math.MaxInt64)
	prev := time.Now()
	for range 1000 {
		t := time.Now()
		if d := t.Sub(prev); d > 0 && d < best {
			best = d
		}
		prev = t
	}
	if best == math.MaxInt64 {
		return -20
	}
	return int8(math.Ceil(math.Log2(best.Seconds())))
}

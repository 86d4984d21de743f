package server

import "github.com/meridian-ntp/meridian/internal/ntp"

// State is the time state a server hands out: what its clock is
// synchronized to and how well. Providers (the local clock, mirror mode, the
// clock discipline) publish a new State through an atomic pointer; a
// published State is never modified.
type State struct {
	// Leap is the leap indicator; LeapUnsync (3) marks an unsynchronized
	// server, whose other fields clients ignore.
	Leap ntp.Leap
	// Stratum is 1 for a primary server, 2 to 15 for a secondary one and
	// 16 when unsynchronized (RFC 5905 Figure 11).
	Stratum uint8
	// Precision is the log2 of the clock's precision in seconds.
	Precision int8
	// RefID identifies the source the server is synchronized to.
	RefID ntp.RefID
	// Reference is when the clock was last set or corrected.
	Reference ntp.Time
	// RootDelay is the round-trip delay to the primary reference.
	RootDelay ntp.Short
	// RootDisp is the dispersion to the primary reference as of Reference;
	// Respond grows it by MaxDriftPPM for the time elapsed since then.
	RootDisp ntp.Short
}

// MaxDriftPPM is the rate, in parts per million, at which the root
// dispersion of a State grows with the time since its Reference: RFC 5905's
// PHI, 15 ppm.
const MaxDriftPPM = 15

// Unsynchronized returns the State of a server with no usable time: leap 3,
// stratum 16 (RFC 5905 §7.3).
func Unsynchronized(precision int8) *State {
	return &State{Leap: ntp.LeapUnsync, Stratum: ntp.MaxStratum, Precision: precision}
}

// Local returns the State of a server that serves its own clock at the
// given stratum, as chrony's "local stratum N": leap none, reference ID
// 127.127.1.1 (the reference ID chrony uses for its local clock, so that
// clients already know what it means), zero root delay and dispersion, and
// Reference ref (the time the state was made, renewed by its provider).
func Local(stratum uint8, precision int8, ref ntp.Time) *State {
	return &State{Leap: ntp.LeapNone, Stratum: stratum, Precision: precision,
		RefID: ntp.RefID{127, 127, 1, 1}, Reference: ref}
}

// rootDisp returns the root dispersion to serve at rx.
func (s *State) rootDisp(rx ntp.Time) ntp.Short {
	if s.Reference.IsZero() {
		return s.RootDisp
	}
	age := rx.Sub(s.Reference)
	if age <= 0 {
		return s.RootDisp
	}
	// In integer arithmetic: age < 2^63 ns, so age/1e6*15 cannot overflow.
	// The growth is rounded up, as an error bound must be.
	grow := age / 1_000_000 * MaxDriftPPM
	return s.RootDisp.AddSat(ntp.ShortCeil(grow))
}

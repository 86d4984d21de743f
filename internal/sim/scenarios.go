package sim

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/meridian-ntp/meridian/internal/leapfile"
	"github.com/meridian-ntp/meridian/internal/ntp"
)

// Named is a scenario by name, with chrony 4.3's RMS offset in the same
// model where chrony's published comparison has one.
type Named struct {
	Name, Description string
	// Scenario returns the scenario for one seed.
	Scenario func(seed uint64) Scenario
	// Chrony is chrony 4.3's mean RMS offset in this scenario, or 0.
	Chrony time.Duration
}

// Scenarios returns the named scenarios, in a stable order.
func Scenarios() []Named {
	var ns []Named
	chrony1 := []time.Duration{22 * time.Microsecond, 97 * time.Microsecond, 436 * time.Microsecond, 1711 * time.Microsecond}
	chrony2 := []time.Duration{14 * time.Microsecond, 56 * time.Microsecond, 215 * time.Microsecond, 752 * time.Microsecond}
	jitters := []time.Duration{10 * time.Microsecond, 100 * time.Microsecond, time.Millisecond, 10 * time.Millisecond}
	for test, c := range [][]time.Duration{chrony1, chrony2} {
		for i, j := range jitters {
			wander, poll, polling := 1e-9, time.Duration(0), "default polling"
			if test == 1 {
				wander, poll, polling = 1e-8, 64*time.Second, "poll fixed at 64 s"
			}
			ns = append(ns, Named{
				Name: fmt.Sprintf("chrony-test%d-%s", test+1, jitterName(j)),
				Description: fmt.Sprintf("chrony's comparison, test %d: wander %g, %s, jitter %v; 11 days, statistics over days 2-11",
					test+1, wander, polling, j),
				Scenario: func(seed uint64) Scenario {
					sc := ChronyModel(seed, wander, j, poll, 11)
					if j >= 10*time.Millisecond {
						sc.Converge = 5 * time.Millisecond
					}
					return sc
				},
				Chrony: c[i],
			})
		}
	}
	return append(append(append(ns, behaviour()...), byzantine()...), leaps()...)
}

// threeServers is base with three servers.
func threeServers(seed uint64) Scenario {
	sc := base(seed)
	sc.Servers = fiveServers(seed).Servers[:3]
	return sc
}

// leapDay sets sc to start at noon the day before the last day of June
// 2026, with a leap second of kind at the end of June, announced by the
// servers listed during the last day.
func leapDay(sc *Scenario, kind ntp.Leap, announcers ...int) {
	sc.Start = time.Date(2026, 6, 29, 12, 0, 0, 0, time.UTC)
	sc.LeapAt, sc.Leap = 36*time.Hour, kind
	for _, i := range announcers {
		sc.Servers[i].Leap = func(t float64) ntp.Leap {
			if t >= 12*3600 && t < 36*3600 {
				return kind
			}
			return ntp.LeapNone
		}
	}
}

// smallStepBigStep makes every server of sc jump 400 s ahead (far below
// the panic threshold) at 2, 4, 6 and 8 hours, and the client restart 5
// minutes after each jump, so that each restart could step the clock
// again (CVE-2015-5300).
func smallStepBigStep(sc *Scenario) {
	const jump, every = 400, 2 * 3600
	for i := range sc.Servers {
		sc.Servers[i].Offset = func(t float64) float64 {
			return jump * math.Min(4, math.Floor(t/every))
		}
	}
	for k := 1; k <= 4; k++ {
		sc.Restarts = append(sc.Restarts, time.Duration(k*every+300)*time.Second)
	}
	sc.Duration, sc.Skip = 10*time.Hour, 0
}

// smear returns the offset from UTC of a server that smears a leap second
// inserted at true time at (s): its clock runs slow by 1/86400 from noon
// before to noon after, and never jumps.
func smear(at float64) func(t float64) float64 {
	const half = 12 * 3600
	return func(t float64) float64 {
		switch {
		case t < at-half || t >= at+half:
			return 0
		case t < at:
			return -(t - (at - half)) / 86400
		}
		return 1 - (t-(at-half))/86400
	}
}

// june2026Leap returns a leap-seconds.list, valid until 2027, whose last
// entry, at 1 July 2026, changes TAI−UTC by change seconds (0: no leap
// there).
func june2026Leap(change int) *leapfile.File {
	f := &leapfile.File{Updated: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), Expires: time.Date(2027, 6, 28, 0, 0, 0, 0, time.UTC),
		Entries: []leapfile.Entry{{At: time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC), Offset: 37}}}
	if change != 0 {
		f.Entries = append(f.Entries, leapfile.Entry{At: time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), Offset: 37 + change})
	}
	return f
}

// leaps returns the leap second scenarios.
func leaps() []Named {
	v := func(name, desc string, f func(*Scenario)) Named {
		return Named{Name: name, Description: desc, Scenario: func(seed uint64) Scenario {
			sc := threeServers(seed)
			f(&sc)
			return sc
		}}
	}
	return []Named{
		v("leap-insert", "three servers announce a leap second at the end of June, and insert it (THREATS E1)", func(sc *Scenario) {
			leapDay(sc, ntp.LeapInsert, 0, 1, 2)
		}),
		v("leap-delete", "three servers announce a deleted second at the end of June, and skip it (THREATS E2)", func(sc *Scenario) {
			leapDay(sc, ntp.LeapDelete, 0, 1, 2)
		}),
		v("leap-minority", "one server of three announces a leap second that does not happen (THREATS E3)", func(sc *Scenario) {
			leapDay(sc, ntp.LeapInsert, 1)
			sc.LeapAt = 0
		}),
		v("leap-file-only", "no server announces the leap second at the end of June; the leap-seconds.list file does (THREATS E1)", func(sc *Scenario) {
			leapDay(sc, ntp.LeapInsert)
			sc.Discipline.Leaps = june2026Leap(1)
		}),
		v("leap-file-overrules", "three servers announce a leap second the leap-seconds.list file does not list (THREATS E3)", func(sc *Scenario) {
			leapDay(sc, ntp.LeapInsert, 0, 1, 2)
			sc.LeapAt = 0
			sc.Discipline.Leaps = june2026Leap(0)
		}),
		{Name: "leap-smear", Description: "three servers announce and insert a leap second; a fourth smears it over the 24 hours around it, as some public servers do (THREATS E4)",
			Scenario: func(seed uint64) Scenario {
				sc := fiveServers(seed)
				sc.Servers = sc.Servers[:4]
				leapDay(&sc, ntp.LeapInsert, 0, 1, 2)
				sc.Servers[3].Offset = smear(sc.LeapAt.Seconds())
				sc.Duration = 72 * time.Hour // a day past the smear's end
				return sc
			}},
		v("leap-wrong-day", "three servers announce a leap second on June 15, not the last day of a month (THREATS E3)", func(sc *Scenario) {
			sc.Start = time.Date(2026, 6, 14, 12, 0, 0, 0, time.UTC)
			for i := range sc.Servers {
				sc.Servers[i].Leap = func(t float64) ntp.Leap {
					if t >= 12*3600 && t < 36*3600 {
						return ntp.LeapInsert
					}
					return ntp.LeapNone
				}
			}
		}),
	}
}

// fiveServers is base with five servers, each its own path.
func fiveServers(seed uint64) Scenario {
	sc := base(seed)
	sc.Servers = make([]Server, 5)
	for i := range sc.Servers {
		sc.Servers[i] = Server{Network: Network{Base: time.Duration(100+20*i) * time.Microsecond, Jitter: 100 * time.Microsecond}}
	}
	return sc
}

func constant(off float64) func(float64) float64 { return func(float64) float64 { return off } }

// byzantine returns the scenarios with lying, jumping and vanishing
// servers.
func byzantine() []Named {
	v := func(name, desc string, mk func(uint64) Scenario, f func(*Scenario)) Named {
		return Named{Name: name, Description: desc, Scenario: func(seed uint64) Scenario {
			sc := mk(seed)
			f(&sc)
			return sc
		}}
	}
	return []Named{
		v("falseticker-1of5", "five servers, one an hour ahead (THREATS D1)", fiveServers, func(sc *Scenario) {
			sc.Servers[1].Offset = constant(3600)
		}),
		v("falsetickers-2of5", "five servers, one an hour ahead, one 3 s behind (THREATS D1)", fiveServers, func(sc *Scenario) {
			sc.Servers[1].Offset = constant(3600)
			sc.Servers[3].Offset = constant(-3)
		}),
		v("no-majority", "five servers, three of them wrong and each differently: +1 h, +2 s, -3 s (THREATS D2)", fiveServers, func(sc *Scenario) {
			sc.Servers[0].Offset = constant(3600)
			sc.Servers[2].Offset = constant(2)
			sc.Servers[4].Offset = constant(-3)
		}),
		v("all-jump-2h", "three servers, all jumping 2 h ahead after 12 hours (THREATS D4)", threeServers, func(sc *Scenario) {
			for i := range sc.Servers {
				sc.Servers[i].Offset = func(t float64) float64 {
					if t >= 12*3600 {
						return 7200
					}
					return 0
				}
			}
		}),
		v("small-step-big-step", "three servers, all jumping 400 s ahead every 2 hours, and the client restarted 5 minutes after each jump (THREATS D5)",
			threeServers, func(sc *Scenario) { smallStepBigStep(sc) }),
		v("kod-rate", "three servers, one answering every request with a RATE kiss-o'-death (THREATS C5)", threeServers, func(sc *Scenario) {
			sc.Servers[2].Kiss = func(float64) ntp.RefID { return ntp.KissRATE }
		}),
		v("kod-deny-2h", "three servers, one answering DENY for two hours, then time again (THREATS C5, C6)", threeServers, func(sc *Scenario) {
			sc.Servers[2].Kiss = func(t float64) ntp.RefID {
				if t >= 6*3600 && t < 8*3600 {
					return ntp.KissDENY
				}
				return ntp.RefID{}
			}
		}),
		v("holdover-1d", "the server unreachable for the whole second day (THREATS F1)", base, func(sc *Scenario) {
			sc.Servers[0].Down = func(t float64) bool { return t >= 24*3600 }
		}),
		v("era-2036", "a day across the NTP era boundary, 2036-02-07 06:28:16 UTC (THREATS A8, E6)", base, func(sc *Scenario) {
			sc.Start = time.Date(2036, 2, 6, 0, 0, 0, 0, time.UTC) // the boundary 30.5 h in, on the second day
			sc.InitOffset = 2 * time.Second
		}),
		v("time_t-2038", "a day across 2038-01-19 03:14:08 UTC, where a 32-bit time_t ends (THREATS E6)", base, func(sc *Scenario) {
			sc.Start = time.Date(2038, 1, 18, 0, 0, 0, 0, time.UTC) // 27.2 h in
			sc.InitOffset = -2 * time.Second
		}),
		v("sybil-4of7", "seven servers, four of them in one attacker's /24, all 3 s behind (THREATS D7)", base, func(sc *Scenario) {
			sc.Servers = nil
			for i := range 7 {
				s := Server{Network: Network{Base: time.Duration(100+10*i) * time.Microsecond, Jitter: 100 * time.Microsecond},
					Group: fmt.Sprintf("192.0.%d.0/24", 10+i)}
				if i >= 3 {
					s.Group, s.Offset = "203.0.113.0/24", constant(-3)
				}
				sc.Servers = append(sc.Servers, s)
			}
		}),
		v("sync-loop", "three servers, one of them synchronized to the client (THREATS D10)", threeServers, func(sc *Scenario) {
			sc.Servers[2].RefID = ClientRefID
			sc.Servers[2].Offset = constant(0.05)
		}),
		v("two-unreachable", "three servers, two never answering: the one left is used once the start-up wait is over (THREATS D9)", threeServers, func(sc *Scenario) {
			sc.Servers[1].Down = func(float64) bool { return true }
			sc.Servers[2].Down = func(float64) bool { return true }
		}),
		v("startup-1d-ahead", "the clock starts a day ahead: beyond the panic threshold, refused (THREATS D6)", base, func(sc *Scenario) {
			sc.InitOffset = 24 * time.Hour
		}),
		v("startup-10y-behind-allowed", "the clock starts ten years behind, with the panic threshold off: one step (THREATS D6)", base, func(sc *Scenario) {
			sc.InitOffset = -10 * 365 * 24 * time.Hour
			sc.Discipline.Panic = -1
		}),
		v("holdover-return", "the server unreachable from hour 12 to hour 36, then back (THREATS F2)", base, func(sc *Scenario) {
			sc.Servers[0].Down = func(t float64) bool { return t >= 12*3600 && t < 36*3600 }
		}),
		v("one-unreachable", "three servers, one never answering (THREATS D9)", threeServers, func(sc *Scenario) {
			sc.Servers[2].Down = func(float64) bool { return true }
		}),
	}
}

// base is the ordinary case the behaviour scenarios vary: one server 100 µs
// away each way with 100 µs of exponential jitter, an oscillator wandering
// by 1e-9, the clock right at the start, default polling, two days with
// the statistics over the second.
func base(seed uint64) Scenario {
	return Scenario{Seed: seed, Duration: 48 * time.Hour, Skip: 24 * time.Hour, Wander: 1e-9,
		Servers: []Server{{Network: Network{Base: 100 * time.Microsecond, Jitter: 100 * time.Microsecond}}}}
}

// behaviour returns the scenarios that vary base, one thing at a time.
func behaviour() []Named {
	v := func(name, desc string, f func(*Scenario)) Named {
		return Named{Name: name, Description: desc, Scenario: func(seed uint64) Scenario {
			sc := base(seed)
			f(&sc)
			return sc
		}}
	}
	return []Named{
		v("defaults", "one server, 100 µs + 100 µs·Exp(1) each way, wander 1e-9, default polling", func(*Scenario) {}),
		v("freq+500ppm", "the oscillator starts 500 ppm fast", func(sc *Scenario) { sc.InitFreq = 500e-6 }),
		v("freq-500ppm", "the oscillator starts 500 ppm slow", func(sc *Scenario) { sc.InitFreq = -500e-6 }),
		v("offset+1s", "the clock starts 1 s ahead", func(sc *Scenario) { sc.InitOffset = time.Second }),
		v("offset-10s", "the clock starts 10 s behind", func(sc *Scenario) { sc.InitOffset = -10 * time.Second }),
		v("jitter-5ms", "5 ms of exponential jitter each way", func(sc *Scenario) {
			sc.Servers[0].Network.Jitter = 5 * time.Millisecond
			sc.Converge = 5 * time.Millisecond
		}),
		v("wander-1e-7", "an oscillator wandering 100 times faster", func(sc *Scenario) { sc.Wander = 1e-7 }),
		v("asym-jitter", "1 ms of extra exponential jitter on the way to the server only (THREATS D8)", func(sc *Scenario) {
			sc.Servers[0].Network.UpJitter = time.Millisecond
		}),
		v("delay-spikes", "one packet in ten, either way, held up by 50 ms more (THREATS D8)", func(sc *Scenario) {
			sc.Servers[0].Network.SpikeRate, sc.Servers[0].Network.Spike = 0.1, 50*time.Millisecond
		}),
		v("loss-33", "a third of the exchanges lost (18% of packets each way; THREATS D9)", func(sc *Scenario) {
			sc.Servers[0].Network.Loss = 0.18
		}),
	}
}

func jitterName(j time.Duration) string {
	if j >= time.Millisecond {
		return fmt.Sprintf("%dms", j/time.Millisecond)
	}
	return fmt.Sprintf("%dus", j/time.Microsecond)
}

// ChronyModel returns the scenario of chrony's published comparison: a
// server keeping true time, answering in zero time, one-way delays of
// 100 µs + jitter·Exp(1), the clock starting 0.1 s off at +100 ppm, a
// random-walk wander, statistics over days 2 to days; poll 0 lets the
// discipline choose.
func ChronyModel(seed uint64, wander float64, jitter, poll time.Duration, days int) Scenario {
	return Scenario{Seed: seed, Duration: time.Duration(days) * 24 * time.Hour, Skip: 24 * time.Hour,
		InitOffset: 100 * time.Millisecond, InitFreq: 100e-6, Wander: wander, Poll: poll,
		Servers: []Server{{Network: Network{Base: 100 * time.Microsecond, Jitter: jitter}}}}
}

// Stat is the mean and standard deviation of one figure over seeds.
type Stat struct {
	Mean float64 `json:"mean"`
	SD   float64 `json:"sd"`
}

// Summary is what Study found over its seeds.
type Summary struct {
	Seeds int
	// RMSOffset, MaxOffset and Converged are in seconds, FreqRMS in s/s.
	RMSOffset, MaxOffset, FreqRMS, Converged Stat
	// NotConverged counts the seeds that never converged (left out of
	// Converged).
	NotConverged int
}

// Study runs the scenario for seeds 1 to seeds, on up to workers
// goroutines, and summarises the results.
func Study(n Named, seeds, workers int) Summary {
	results := make([]Result, seeds)
	var wg sync.WaitGroup
	next := make(chan int)
	for range max(workers, 1) {
		wg.Add(1)
		// The worker exits when next is closed.
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = Run(n.Scenario(uint64(i + 1)))
			}
		}()
	}
	for i := range seeds {
		next <- i
	}
	close(next)
	wg.Wait()
	var s Summary
	s.Seeds = seeds
	var rms, mx, fr, conv []float64
	for _, r := range results {
		rms = append(rms, r.RMSOffset.Seconds())
		mx = append(mx, r.MaxOffset.Seconds())
		fr = append(fr, r.FreqRMS)
		if r.Converged < 0 {
			s.NotConverged++
		} else {
			conv = append(conv, r.Converged.Seconds())
		}
	}
	s.RMSOffset, s.MaxOffset, s.FreqRMS, s.Converged = stat(rms), stat(mx), stat(fr), stat(conv)
	return s
}

func stat(xs []float64) Stat {
	if len(xs) == 0 {
		return Stat{}
	}
	var sum, sum2 float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / float64(len(xs))
	for _, x := range xs {
		sum2 += (x - mean) * (x - mean)
	}
	sd := 0.0
	if len(xs) > 1 {
		sd = math.Sqrt(sum2 / float64(len(xs)-1))
	}
	return Stat{mean, sd}
}

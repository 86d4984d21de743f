package discipline

import "math"

// kalman is a two-state Kalman filter of a clock's offset from its
// source and the rate at which that offset drifts.
//
// State: theta, the offset of the source's time from the local clock
// (seconds; a sample measures it), and nu, its natural drift rate (s/s: the
// local oscillator's frequency error with the sign that makes
// d(theta)/dt = nu - a, a being the frequency correction the caller
// applied). nu is a random walk whose variance grows by q per second; theta
// gets no noise of its own beyond a small floor qTheta.
type kalman struct {
	theta, nu float64
	// p is the state covariance: p[0][0] of theta, p[1][1] of nu.
	p [2][2]float64
	q float64 // variance of nu's random walk per second, (s/s)^2/s
	// logLik is the log-likelihood of the innovations seen so far,
	// decayed, which ranks filters of a bank against each other.
	logLik float64
}

// maxNu bounds the drift estimate, s/s.
const maxNu = 1000e-6

// qTheta is the variance per second of white phase noise assumed beside
// the frequency random walk: it keeps the filter from trusting its own
// offset estimate without bound (1 ns/sqrt(s)).
const qTheta = 1e-18

// predict advances the state by dt seconds, during which the caller's
// corrections changed theta by -corr seconds.
func (k *kalman) predict(dt, corr float64) {
	if dt < 0 {
		dt = 0
	}
	k.theta += k.nu*dt - corr
	p := k.p
	// P = F P F' + Q, F = [[1 dt] [0 1]], Q the integrated random walk.
	p00 := p[0][0] + dt*(p[1][0]+p[0][1]) + dt*dt*p[1][1]
	p01 := p[0][1] + dt*p[1][1]
	p11 := p[1][1]
	k.p[0][0] = p00 + k.q*dt*dt*dt/3 + qTheta*dt
	k.p[0][1] = p01 + k.q*dt*dt/2
	k.p[1][0] = k.p[0][1]
	k.p[1][1] = p11 + k.q*dt
}

// update folds in a measurement z of theta with variance r.
func (k *kalman) update(z, r float64) {
	innov := z - k.theta
	s := k.p[0][0] + r
	if s <= 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return
	}
	g0, g1 := k.p[0][0]/s, k.p[1][0]/s
	k.theta += g0 * innov
	// No crystal is maxNu off (the kernel corrects ±500 ppm by frequency):
	// a drift beyond it is noise fitted as frequency, and steering by it
	// would run the clock away.
	k.nu = max(-maxNu, min(maxNu, k.nu+g1*innov))
	p00, p01, p11 := k.p[0][0], k.p[0][1], k.p[1][1]
	k.p[0][0] = (1 - g0) * p00
	k.p[0][1] = (1 - g0) * p01
	k.p[1][0] = k.p[0][1]
	k.p[1][1] = p11 - g1*p01
	nis := innov * innov / s
	// The likelihood is Student's t with likDOF degrees of freedom, not a
	// Gaussian: a sample's real error sometimes exceeds what its delay
	// promised (the window's minimum is only an estimate of the path's),
	// and under a Gaussian likelihood one such sample outweighs hundreds
	// of ordinary ones and hands the lead to a filter with the wrong
	// wander. In simulation, at 10 ms of jitter and 1024 s polls, this cut
	// the RMS offset by 28% (Gaussian: 1.74 ms, t with 3 degrees of
	// freedom: 1.26 ms) and changed nothing at low jitter; a hard cap on
	// each sample's share hid real wander instead (66 µs at 10 µs of
	// jitter, where 6.3 µs is right).
	k.logLik = likDecay*k.logLik - 0.5*(math.Log(s)+(likDOF+1)*math.Log1p(nis/likDOF))
}

// likDecay weighs the older innovations in a filter's likelihood: the
// last few hundred samples decide which wander level fits.
const likDecay = 0.995

// likDOF is the degrees of freedom of the likelihood's t distribution.
const likDOF = 3

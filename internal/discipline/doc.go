// Package discipline estimates the local clock's offset and frequency
// error from the samples of its sources, and decides how to correct the
// clock: the clock filter, source selection and combining, the clock loop
// and the step and slew policy.
//
// The estimator of each source is a two-state Kalman filter (offset and
// frequency, the frequency a random walk) whose measurement variance comes
// from each sample's delay: a sample's offset error is at most half its
// delay above the shortest delay the path has, so a sample with little
// excess delay is worth much more than one with a lot (see docs/design.md,
// The clock discipline). The wander of the local oscillator is not known in
// advance; a bank of filters, one per wander level, runs side by side and
// the likeliest one leads.
//
// The package performs no I/O: it reads no clock and sets none. Times come
// in as arguments; decisions go out as values that the caller carries out.
package discipline

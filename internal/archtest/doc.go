// Package archtest checks that Meridian's core packages (ntp, nts, source,
// discipline and server) stay pure: they must not reach the network, the file
// system, the process environment or the logger, read the wall or monotonic
// clock, sleep, or draw from a global random source. Time, entropy and bytes
// come in as arguments; decisions go out as values.
//
// The check has two halves. [CheckImports] walks the import graph reported by
// "go list -deps" and reports every core package that can reach a forbidden
// package such as os, net or syscall. [CheckSource] parses the core's Go
// files and reports uses of clock, sleep and global-randomness functions from
// otherwise allowed packages such as time and math/rand/v2.
//
// The package's test runs both halves over the repository; this package
// itself performs no checks at init and holds no state.
package archtest

// Package config reads Meridian's configuration: a TOML file (TOML 1.0,
// kebab-case keys) whose schema is documented in docs/config.md.
//
// [Parse] decodes and validates a document held in memory; it performs no
// I/O, so it is safe to fuzz and to call from tests. [Load] reads a file
// named by the caller (there is no search path and the current directory is
// never consulted), refuses files that are not regular or that anyone may
// write, and then calls Parse. [Default] returns the configuration an empty
// file produces.
//
// Parsing is strict, as befits a daemon that runs as root and faces the
// Internet: unknown keys, values of the wrong type, duplicate keys or
// tables, out-of-range numbers, invalid UTF-8, NUL bytes, lines longer than
// 4096 bytes, files larger than 1 MiB and arrays or inline tables nested
// more than 32 deep are all errors. Every problem is
// reported as "file:line: key: reason", and all of them (up to 20) are
// returned together as an [*Errors], so one run of "meridian check-config"
// shows everything that needs fixing.
//
// The TOML syntax is scanned by go-toml's unstable parser; this package
// walks the resulting expressions itself, which is what lets it name the
// line of every key and keep going after the first mistake. Text taken from
// the file is quoted in messages, so a crafted key cannot inject terminal
// control sequences into logs.
package config

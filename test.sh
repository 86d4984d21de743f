#!/bin/sh
# test.sh runs Meridian's whole test suite: formatting, go vet (for
# amd64 and arm64), staticcheck, every test with the race detector
# (interop tests against chronyd and ntpd included; they print SKIP when a
# peer is not installed, and fail under CI=true), the integration tests a
# second time with the seccomp filters in log mode, then each fuzz target
# for FUZZTIME executions
# (default 100000x; a count, because a duration lets Go's fuzz coordinator
# report a spurious "context deadline exceeded" when the time runs out,
# golang/go#75804).
set -eu
cd "$(dirname "$0")"
FUZZTIME=${FUZZTIME:-100000x}

step() { printf '\n== %s\n' "$*"; }

step gofmt
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "not gofmt-ed:"; echo "$unformatted"; exit 1
fi

step go vet
go vet ./...

step "go vet for arm64 (the other architecture the daemon is built for)"
GOARCH=arm64 go vet ./...

step staticcheck
go tool staticcheck ./...

race=-race
if ! command -v gcc >/dev/null 2>&1 && ! command -v cc >/dev/null 2>&1; then
	if [ "${CI:-}" = true ]; then
		echo "the race detector needs a C compiler (apt-get install gcc)"; exit 1
	fi
	echo "note: no C compiler, so the tests run without the race detector (apt-get install gcc)"
	race=
fi

step "go test $race"
go test $race -count=1 ./...

step "the integration tests again, the split daemons' filters in log mode"
# Each daemon a test splits fails it if the kernel logs a call of its
# processes as off the lists (in kill mode too, above).
MERIDIAN_TEST_FILTER=log go test $race -count=1 ./cmd/meridian

step "fuzz each target for $FUZZTIME"
# The list is made first so that a failure to make it stops the script.
list=$(go test -list '^Fuzz' ./...)
printf '%s\n' "$list" | awk '
	/^Fuzz/ { names = names " " $1; next }
	/^ok/ { if (names != "") print $2 names; names = "" }' |
while read -r pkg targets; do
	for t in $targets; do
		echo "$pkg $t"
		go test -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/meridian-fuzz.$$ 2>&1 || {
			cat /tmp/meridian-fuzz.$$; rm -f /tmp/meridian-fuzz.$$; exit 1; }
		grep 'fuzz: elapsed' /tmp/meridian-fuzz.$$ | tail -n 1 | sed 's/^/    /'
	done
done
rm -f /tmp/meridian-fuzz.$$
step "all tests passed"

package main

import (
	"bytes"
	"testing"

	"github.com/meridian-ntp/meridian/internal/control"
)

// TestWriteSources: the sources table names each source as configured
// and by address, so that a pool's members, which share a name, are told
// apart.
func TestWriteSources(t *testing.T) {
	var out bytes.Buffer
	writeSources(env{stdout: &out}, []control.Source{
		{Name: "pool.example:123", Address: "192.0.2.7:123", State: "selected", Stratum: 2, Poll: 6, Reach: 0o377, Offset: 12e-6, OffsetSD: 3e-6},
		{Name: "pool.example:123", Address: "[2001:db8::9]:123", State: "falseticker", Stratum: 1, Poll: 10, Reach: 0o17, Offset: -1.5, OffsetSD: 2e-4},
	})
	want := `STATE        NAME              ADDRESS            STRATUM  POLL  REACH  OFFSET          SD
selected     pool.example:123  192.0.2.7:123      2        6     377    +0.000012000 s  0.000003000 s
falseticker  pool.example:123  [2001:db8::9]:123  1        10    017    -1.500000000 s  0.000200000 s
`
	if out.String() != want {
		t.Errorf("sources table:\n%s\nwant:\n%s", out.String(), want)
	}
}

package leapfile

import (
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
)

// build returns a file with the given update time, expiry and entries
// ("SECONDS OFFSET" each), hashed as the format says unless hash is given.
func build(updated, expires uint64, entries []string, hash string) []byte {
	var b, digits strings.Builder
	fmt.Fprintf(&b, "#\tA test file\n#$\t %d\n#@\t%d\n#\n", updated, expires)
	fmt.Fprintf(&digits, "%d%d", updated, expires)
	for _, e := range entries {
		f := strings.Fields(e)
		fmt.Fprintf(&b, "%s\t%s\t# comment\n", f[0], f[1])
		digits.WriteString(f[0] + f[1])
	}
	if hash == "" {
		sum := sha1.Sum([]byte(digits.String()))
		var w []string
		for i := range 5 {
			w = append(w, fmt.Sprintf("%x", binary.BigEndian.Uint32(sum[4*i:])))
		}
		hash = strings.Join(w, " ")
	}
	fmt.Fprintf(&b, "#h\t%s\n", hash)
	return []byte(b.String())
}

// NTP seconds of some dates.
const (
	jan1972  = 2272060800 // 1 Jan 1972
	jul1972  = 2287785600
	jan2017  = 3692217600
	updated  = 3900000000
	expires  = 4000000000 // 2026-10-02
	jul2026  = 3991852800 // 1 Jul 2026
	jan2027  = 4007750400
	expires2 = 4100000000
)

func TestParseSystemFile(t *testing.T) {
	b, err := os.ReadFile("/usr/share/zoneinfo/leap-seconds.list")
	if err != nil {
		t.Skipf("SKIP: no system leap-seconds.list to check against: %v", err)
	}
	f, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(/usr/share/zoneinfo/leap-seconds.list): %v", err)
	}
	last := f.Entries[len(f.Entries)-1]
	if f.Entries[0].Offset != 10 || last.Offset < 37 || !last.At.Before(f.Expires) {
		t.Errorf("first entry %+v, last %+v, expiry %v; want 10 s from 1972, at least 37 s", f.Entries[0], last, f.Expires)
	}
	if got := f.LeapAt(time.Date(2016, 12, 31, 12, 0, 0, 0, time.UTC)); got != ntp.LeapInsert {
		t.Errorf("LeapAt(31 Dec 2016) = %v; want insert", got)
	}
	if got := f.LeapAt(time.Date(2016, 12, 30, 12, 0, 0, 0, time.UTC)); got != ntp.LeapNone {
		t.Errorf("LeapAt(30 Dec 2016) = %v; want none", got)
	}
}

func TestParse(t *testing.T) {
	good := []string{fmt.Sprint(jan1972, " 10"), fmt.Sprint(jul1972, " 11"), fmt.Sprint(jan2017, " 12"), fmt.Sprint(jul2026, " 13")}
	f, err := Parse(build(updated, expires, good, ""))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.LeapAt(time.Date(2026, 6, 30, 23, 0, 0, 0, time.UTC)); got != ntp.LeapInsert {
		t.Errorf("LeapAt(30 June 2026) = %v; want insert", got)
	}
	if f.Expired(time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC)) || !f.Expired(time.Date(2026, 10, 4, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("expiry %v: wrong Expired", f.Expires)
	}
	del := append(good[:3:3], fmt.Sprint(jan2027, " 11"))
	if f, err := Parse(build(updated, expires2, del, "")); err != nil || f.LeapAt(time.Date(2026, 12, 31, 1, 0, 0, 0, time.UTC)) != ntp.LeapDelete {
		t.Errorf("a deleted second on 31 Dec 2026: %v", err)
	}
	// Leading zeros of hash words may be left out.
	if _, err := Parse(bytesReplaceHashZeros(build(updated, expires, good, ""))); err != nil {
		t.Errorf("hash words without leading zeros: %v", err)
	}
	for name, b := range map[string][]byte{
		"bad hash":         build(updated, expires, good, "1 2 3 4 5"),
		"short hash":       build(updated, expires, good, "1 2 3 4"),
		"hex garbage":      build(updated, expires, good, "zz 2 3 4 5"),
		"changed entry":    []byte(strings.Replace(string(build(updated, expires, good, "")), "\t13\t", "\t14\t", 1)),
		"two-second jump":  build(updated, expires, []string{fmt.Sprint(jan1972, " 10"), fmt.Sprint(jul1972, " 12")}, ""),
		"backwards":        build(updated, expires, []string{fmt.Sprint(jul1972, " 10"), fmt.Sprint(jan1972, " 11")}, ""),
		"no entries":       build(updated, expires, nil, ""),
		"no expiry":        []byte(strings.Replace(string(build(updated, expires, good, "")), "#@", "# ", 1)),
		"bad line":         []byte("#$ 1\n#@ 2\n123 abc\n#h 1 2 3 4 5\n"),
		"three fields":     []byte("#$ 1\n#@ 2\n123 10 11\n#h 1 2 3 4 5\n"),
		"huge":             make([]byte, MaxSize+1),
		"negative":         []byte("#$ 1\n#@ 2\n-5 10\n#h 1 2 3 4 5\n"),
		"timestamp > 2^32": []byte("#$ 1\n#@ 2\n4294967296 10\n#h 1 2 3 4 5\n"),
	} {
		if _, err := Parse(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v; want ErrInvalid", name, err)
		}
	}
}

// bytesReplaceHashZeros strips the leading zeros of the hash words.
func bytesReplaceHashZeros(b []byte) []byte {
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "#h") {
			var w []string
			for _, x := range strings.Fields(l[2:]) {
				x = strings.TrimLeft(x, "0")
				if x == "" {
					x = "0"
				}
				w = append(w, x)
			}
			lines[i] = "#h " + strings.Join(w, " ")
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

// FuzzParse: THREATS A10, E5. No panic; what parses has entries that go
// forward a second at a time and a hash that matches.
func FuzzParse(f *testing.F) {
	f.Add(build(updated, expires, []string{fmt.Sprint(jan1972, " 10"), fmt.Sprint(jul1972, " 11")}, ""))
	f.Add([]byte("#$ 1\n#@ 2\n123 10\n#h 1 2 3 4 5\n"))
	if b, err := os.ReadFile("/usr/share/zoneinfo/leap-seconds.list"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		lf, err := Parse(b)
		if err != nil {
			return
		}
		for i := 1; i < len(lf.Entries); i++ {
			d := lf.Entries[i].Offset - lf.Entries[i-1].Offset
			if !lf.Entries[i].At.After(lf.Entries[i-1].At) || d*d != 1 {
				t.Fatalf("entries %+v accepted", lf.Entries)
			}
		}
		_ = lf.LeapAt(lf.Entries[0].At)
	})
}

package xdp

import "testing"

// FuzzProgram runs arbitrary frames through the program: each must be
// passed on unchanged or answered exactly as package server answers it,
// never dropped or answered otherwise (THREATS A1-A10).
func FuzzProgram(f *testing.F) {
	for _, fr := range []frame{
		{src: client4, dst: serve4, payload: request(4, 3, 6)},
		{src: client6, dst: serve6, payload: request(3, 3, -3)},
		{src: client4, dst: serve4, payload: request(4, 6, 0)},
		{src: client6, dst: serve6, payload: make([]byte, 68)},
	} {
		f.Add(fr.build())
	}
	p, c, resp, st := plain(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < ethLen {
			return // the kernel refuses to run XDP programs on less
		}
		check(t, p, c, resp, st, in)
	})
}

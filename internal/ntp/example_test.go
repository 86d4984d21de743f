package ntp_test

import (
	"fmt"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
)

func ExamplePacket_Decode() {
	// A server reply: leap none, version 4, mode 4, stratum 2, poll 6,
	// precision -20, followed by a 28-byte extension field.
	b := make([]byte, ntp.HeaderLen+28)
	h := ntp.Header{Version: 4, Mode: ntp.ModeServer, Stratum: 2, Poll: 6, Precision: -20,
		RefID: ntp.RefID{192, 0, 2, 1}}
	if _, err := h.Encode(b); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := ntp.PutExt(b[ntp.HeaderLen:], 0x0104, []byte("unique identifier value")); err != nil {
		fmt.Println(err)
		return
	}

	var p ntp.Packet
	if err := p.Decode(b); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Mode, p.Stratum, p.RefID.Text(p.Stratum), ntp.Log2Duration(p.Poll))
	it := p.Fields()
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		fmt.Printf("field %#04x, %d bytes\n", f.Type, len(f.Value))
	}
	// Output:
	// server 2 192.0.2.1 1m4s
	// field 0x0104, 24 bytes
}

func ExampleTime_Resolve() {
	ts := ntp.TimeFrom(time.Date(2036, 2, 7, 6, 28, 16, 5, time.UTC))
	fmt.Printf("%#x\n", uint64(ts)) // era 1 starts again at zero seconds
	fmt.Println(ts.Resolve(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)))
	// Output:
	// 0x15
	// 2036-02-07 06:28:16.000000005 +0000 UTC
}

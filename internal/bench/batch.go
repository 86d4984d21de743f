package bench

// batchSize is the number of datagrams one sendmmsg or recvmmsg call
// moves at most.
const batchSize = 64

// recvBufSize is the largest reply taken whole; longer ones are truncated
// and counted as malformed. A reply to a 48-byte request is 48 bytes, or a
// little more with a legacy MAC.
const recvBufSize = 1024

// batch is a set of datagram buffers for one batched send or receive. Its
// buffers are allocated once and reused by every call.
type batch struct {
	bufs  [][]byte // the datagrams; a send uses bufs[i][:ntp.HeaderLen]
	lens  []int    // received lengths
	trunc []bool   // received datagrams cut short by their buffer
	rx    []int64  // kernel receive times (Unix ns), 0 if there is none
	sys   sysBatch // the platform's message headers pointing at bufs
}

func newBatch(bufSize int) *batch {
	b := &batch{
		bufs:  make([][]byte, batchSize),
		lens:  make([]int, batchSize),
		trunc: make([]bool, batchSize),
		rx:    make([]int64, batchSize),
	}
	mem := make([]byte, batchSize*bufSize)
	for i := range b.bufs {
		b.bufs[i] = mem[i*bufSize : (i+1)*bufSize : (i+1)*bufSize]
	}
	b.sys.init(b.bufs)
	return b
}

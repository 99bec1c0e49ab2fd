package execution

import "sync"

// A response's data is written into a buffer from dataBuffers, and the buffer goes
// back once the response is written (ReleaseData). A new buffer per response grows
// by doubling to the response's size, allocating about twice that: 65 kB for a
// contacts page of 50 with their segments, a sixth of what the request allocates.
var dataBuffers sync.Pool

// maxPooledData is the capacity beyond which a buffer is left to the garbage
// collector rather than kept: one large response must not keep its buffer alive.
const maxPooledData = 256 << 10

// DataBuffer returns an empty buffer for a response's data: a slice of length 0,
// with room for an earlier response's when the pool has one.
func DataBuffer() []byte {
	if p, ok := dataBuffers.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return nil
}

// ReleaseData gives data, a response's data written into a DataBuffer, back to the
// pool, once it is written: nothing may use data afterwards.
func ReleaseData(data []byte) {
	if cap(data) == 0 || cap(data) > maxPooledData {
		return
	}
	data = data[:0]
	dataBuffers.Put(&data)
}

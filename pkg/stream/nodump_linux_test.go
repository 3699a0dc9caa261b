package stream

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"unsafe"

	"github.com/cmekctl/cmekctl/internal/smaps"
)

// TestPlaintextBuffersNotDumped: the buffers that hold plaintext, a
// writer's job input and a reader's job output, serial and parallel, are
// MADV_DONTDUMP on every whole page (VmFlags dd); the ciphertext buffers
// need not be. Fails on heap buffers left as they are.
func TestPlaintextBuffersNotDumped(t *testing.T) {
	key := make([]byte, KeySize)
	rand.Read(key)
	pt := make([]byte, 1<<20)
	rand.Read(pt)
	for _, p := range []int{1, 4} {
		opt := Options{ChunkSize: 64 << 10, Parallel: p}
		var ct bytes.Buffer
		w, err := NewWriter(&ct, key, []byte("h"), opt)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(pt); err != nil {
			t.Fatal(err)
		}
		ww := w.(*writer)
		var ins [][]byte
		for _, j := range append(slices.Clone(ww.queue), ww.cur) {
			ins = append(ins, j.in)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := NewReader(bytes.NewReader(ct.Bytes()), key, []byte("h"), opt)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			t.Fatal(err)
		}
		// Read to the end, so that no worker still writes a job (the
		// race detector): the jobs are back on the free list.
		rr := r.(*reader)
		var outs [][]byte
		for _, j := range rr.free {
			outs = append(outs, j.out)
		}
		if len(outs) == 0 {
			t.Fatalf("P=%d: no reader job kept", p)
		}
		wantNoDump(t, fmt.Sprintf("P=%d", p), map[string][][]byte{"writer in": ins, "reader out": outs})
	}
}

// wantNoDump checks that each buffer holds a whole page and that its pages
// are left out of core dumps (VmFlags "dd", MADV_DONTDUMP).
func wantNoDump(t *testing.T, label string, bufs map[string][][]byte) {
	t.Helper()
	for what, bs := range bufs {
		for _, b := range bs {
			page := wholePage(b)
			if page == 0 {
				t.Fatalf("%s %s: %d bytes hold no whole page", label, what, cap(b))
			}
			flags, err := smaps.VmFlagsAt(page)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(flags, "dd") {
				t.Errorf("%s %s: flags %v, want dd", label, what, flags)
			}
		}
	}
}

// wholePage is the address of the first page wholly inside b's capacity,
// or 0.
func wholePage(b []byte) uint64 {
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b[:cap(b)])))
	lo := (start + pageSize - 1) &^ (pageSize - 1)
	if lo+pageSize > start+uintptr(cap(b)) {
		return 0
	}
	return uint64(lo)
}

// TestDrivenPlaintextNotDumped: the plaintext buffers of driven streams
// (drive.go: a regular file copied whole), in every mode, are MADV_DONTDUMP
// too, though their buffers are kept from stream to stream.
func TestDrivenPlaintextNotDumped(t *testing.T) {
	var mu sync.Mutex
	var made [][]byte // the plaintext buffer of each job made
	madeJob = func(j *job) {
		mu.Lock()
		defer mu.Unlock()
		if j.open {
			made = append(made, j.out)
		} else {
			made = append(made, j.in)
		}
	}
	defer func() { madeJob = nil }()
	pt := make([]byte, 1<<20)
	rand.Read(pt)
	for _, p := range []int{1, 2} {
		for _, toFile := range []bool{false, true} {
			opt := Options{ChunkSize: 64 << 10, Parallel: p}
			made = nil
			var buf bytes.Buffer
			var dst io.Writer = &buf
			out := &memOut{}
			if toFile {
				dst = out
			}
			w, err := NewWriter(dst, testKey, testHeader, opt)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.(io.ReaderFrom).ReadFrom(newMemFile(pt)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			ct := buf.Bytes()
			if toFile {
				ct = out.b
			}
			ins := made
			made = nil
			r, err := NewReader(newMemFile(ct), testKey, testHeader, opt)
			if err != nil {
				t.Fatal(err)
			}
			var sink io.Writer = io.Discard
			if toFile {
				sink = &memOut{}
			}
			if _, err := io.Copy(sink, r); err != nil {
				t.Fatal(err)
			}
			if p == 1 && !toFile {
				continue // not driven: the caller does it all
			}
			if len(ins) == 0 || len(made) == 0 {
				t.Fatalf("P=%d file=%v: %d writer jobs, %d reader jobs made: not driven", p, toFile, len(ins), len(made))
			}
			wantNoDump(t, fmt.Sprintf("P=%d file=%v", p, toFile), map[string][][]byte{"writer in": ins, "reader out": made})
		}
	}
}

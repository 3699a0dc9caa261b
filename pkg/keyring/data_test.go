package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/stream"
)

// The data plane: Sealer.Seal and Sealer.Open.

func TestDataRoundTripChunkBoundaries(t *testing.T) {
	k := newKMS(t)
	c := newCluster(t, k, "cluster-data", 1, 1)
	env := k.env()
	s, err := keyring.OpenSealer(context.Background(), env, keyring.Store{Dir: c.dirs()[0]})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, cs := range []int{64, 1024, stream.DefaultChunkSize} {
		for _, par := range []int{1, 3} {
			opt := stream.Options{ChunkSize: cs, Parallel: par}
			for _, n := range []int{0, 1, cs - 1, cs, cs + 1, 2*cs - 1, 2 * cs, 2*cs + 1, 5*cs + 7} {
				plain := make([]byte, n)
				io.ReadFull(&gen{n: int64(n)}, plain)
				var sealed, out bytes.Buffer
				h, err := s.Seal(&sealed, bytes.NewReader(plain), opt)
				if err != nil {
					t.Fatalf("chunk %d, %d bytes: seal: %v", cs, n, err)
				}
				if bytes.Contains(sealed.Bytes(), plain) && n >= 16 {
					t.Fatalf("chunk %d, %d bytes: plaintext visible in the sealed data", cs, n)
				}
				h2, err := s.Open(&out, bytes.NewReader(sealed.Bytes()), opt)
				if err != nil || !bytes.Equal(out.Bytes(), plain) || h2 != h {
					t.Fatalf("chunk %d, parallel %d, %d bytes: open: %v (%d bytes back)", cs, par, n, err, out.Len())
				}
				// Any Parallel reads any other.
				out.Reset()
				if _, err := s.Open(&out, bytes.NewReader(sealed.Bytes()), stream.Options{ChunkSize: cs, Parallel: 4 - par}); err != nil || !bytes.Equal(out.Bytes(), plain) {
					t.Fatalf("chunk %d, %d bytes: open with another parallelism: %v", cs, n, err)
				}
				// Truncated by one byte or extended: refused.
				if sealed.Len() > 0 {
					out.Reset()
					if _, err := s.Open(&out, bytes.NewReader(sealed.Bytes()[:sealed.Len()-1]), opt); err == nil {
						t.Fatalf("chunk %d, %d bytes: truncated data opened", cs, n)
					}
					out.Reset()
					if _, err := s.Open(&out, bytes.NewReader(append(sealed.Bytes(), 0)), opt); err == nil {
						t.Fatalf("chunk %d, %d bytes: extended data opened", cs, n)
					}
				}
			}
		}
	}
}

// Data sealed by a data key that was later retired, and under a store key
// that was later rotated, and wrapped by a CMEK version that was later
// replaced, still opens.
func TestDataOpensAfterRotations(t *testing.T) {
	ctx := context.Background()
	k := newKMS(t)
	c := newCluster(t, k, "cluster-rot", 1, 2)
	env := k.env()
	dirs := c.dirs()
	type sample struct {
		plain, sealed []byte
		key           string
	}
	var samples []sample
	add := func(step string) {
		for _, d := range dirs {
			p := []byte(fmt.Sprintf("written on %s %s", d, step))
			sealed := seal(t, env, d, p, stream.Options{ChunkSize: 16})
			h, _, err := keyring.ReadDataHeader(bytes.NewReader(sealed))
			if err != nil {
				t.Fatal(err)
			}
			samples = append(samples, sample{p, sealed, h.DataKeyID})
		}
	}
	add("at enable")
	steps := []struct {
		name string
		op   string
	}{
		{"after rotate data-key", keyring.OpRotateDataKey},
		{"after rotate store-key", keyring.OpRotateStoreKey},
		{"after a second rotate store-key", keyring.OpRotateStoreKey},
		{"after rotate data-key again", keyring.OpRotateDataKey},
		{"after rotate cmek", keyring.OpRotateCMEK},
	}
	for _, st := range steps {
		if st.op == keyring.OpRotateCMEK {
			if _, err := k.admin(t, c.regions[0].cmek).Rotate(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := rotate(ctx, env, dirs, nil, st.op, keyring.RotateOptions{}); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		add(st.name)
	}
	keys := map[string]bool{}
	for i, s := range samples {
		keys[s.key] = true
		d := dirs[i%len(dirs)]
		got, err := open(env, d, s.sealed, stream.Options{ChunkSize: 16})
		if err != nil || !bytes.Equal(got, s.plain) {
			t.Fatalf("sample %q: %v", s.plain, err)
		}
	}
	if want := 3 * len(dirs); len(keys) != want {
		t.Fatalf("samples were sealed by %d data keys, want %d", len(keys), want)
	}
	kr := load(t, dirs[0])
	if kr.DataKey(samples[0].key).State != keyring.StateRetired {
		t.Fatal("the first data key is not retired")
	}
	if kr.StoreWrap.CMEKVersion != "2" || len(kr.StoreKeys) != 3 {
		t.Fatalf("after the rotations: CMEK version %s, %d store keys", kr.StoreWrap.CMEKVersion, len(kr.StoreKeys))
	}
}

// recorder keeps what Open released.
type recorder struct{ bytes.Buffer }

// A flipped bit anywhere in a data file is an error; after the header, no
// plaintext of the damaged chunk (or any later one) is released.
func TestDataBitFlips(t *testing.T) {
	k := newKMS(t)
	c := newCluster(t, k, "cluster-flip", 1, 1)
	env := k.env()
	s, err := keyring.OpenSealer(context.Background(), env, keyring.Store{Dir: c.dirs()[0]})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const cs = 64
	plain := make([]byte, 5*cs+21)
	io.ReadFull(&gen{n: int64(len(plain))}, plain)
	var sealed bytes.Buffer
	opt := stream.Options{ChunkSize: cs}
	if _, err := s.Seal(&sealed, bytes.NewReader(plain), opt); err != nil {
		t.Fatal(err)
	}
	_, head, err := keyring.ReadDataHeader(bytes.NewReader(sealed.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	data := sealed.Bytes()
	flips, released := 0, 0
	for i := range data {
		for bit := range 8 {
			bad := bytes.Clone(data)
			bad[i] ^= 1 << bit
			var out recorder
			_, err := s.Open(&out, bytes.NewReader(bad), opt)
			flips++
			if err == nil {
				t.Fatalf("bit %d of byte %d flipped: opened", bit, i)
			}
			// The chunk the flip is in: the header and the salt belong to
			// chunk 0.
			chunk := 0
			if off := i - len(head) - stream.SaltSize; off >= 0 {
				chunk = off / (cs + stream.Overhead)
			}
			if out.Len() > chunk*cs || !bytes.Equal(out.Bytes(), plain[:out.Len()]) {
				t.Fatalf("bit %d of byte %d (chunk %d) flipped: %d bytes released", bit, i, chunk, out.Len())
			}
			if i >= len(head) && !errors.Is(err, stream.ErrAuth) && !errors.Is(err, stream.ErrTruncated) {
				t.Fatalf("bit %d of byte %d flipped: %v, want an authentication error", bit, i, err)
			}
			released += out.Len()
		}
	}
	t.Logf("%d bit flips over %d bytes: all refused; %d bytes of plaintext released in total, all from chunks before the damage", flips, len(data), released)
}

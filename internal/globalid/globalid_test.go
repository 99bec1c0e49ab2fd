package globalid

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, k := range []Kind{Workspace, Segment, Contact} {
		for _, n := range []int64{1, 127, 128, 300, 1 << 32, math.MaxInt64} {
			id := Encode(k, n)
			gotK, gotN, err := Decode(id)
			if err != nil || gotK != k || gotN != n {
				t.Errorf("Decode(Encode(%s, %d) = %q) = %s, %d, %v", k, n, id, gotK, gotN, err)
			}
		}
	}
}

func TestDecodeRefusesMalformed(t *testing.T) {
	for _, id := range []string{
		"", "S", "S_", "X_AQ", "s_AQ", "S_AQ=", "S_A", "S_AA", // 0 is no object
		"S_gAE=", "S_gAA", // a non-canonical varint of 0
		"S_AQ_", "S_!!", "S_" + "gICAgICAgICAAQ", // longer than any int64
		"Segment:1", "1",
	} {
		if _, _, err := Decode(id); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%q) = %v, want ErrMalformed", id, err)
		}
	}
}

func TestDecodeAsChecksKind(t *testing.T) {
	if _, err := DecodeAs(Segment, Encode(Contact, 7)); !errors.Is(err, ErrWrongKind) {
		t.Fatalf("got %v, want ErrWrongKind", err)
	}
	if n, err := DecodeAs(Contact, Encode(Contact, 7)); err != nil || n != 7 {
		t.Fatalf("got %d, %v", n, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("S_AQ")
	f.Add("C_gAE")
	f.Add("W_____")
	f.Fuzz(func(t *testing.T, id string) {
		k, n, err := Decode(id)
		if err != nil {
			return
		}
		if Encode(k, n) != id {
			t.Fatalf("Decode(%q) = %s, %d but that encodes as %q", id, k, n, Encode(k, n))
		}
	})
}

// TestAppendSpelling checks Append and Encode against the spelling written out (the
// kind, "_", the unpadded URL base64 of the number's varint), and that Encode's
// buffer holds the longest ID (that of a uint64 past int64's, 10 varint bytes).
func TestAppendSpelling(t *testing.T) {
	for _, n := range []int64{1, 127, 128, 300, 1 << 32, math.MaxInt64, -1} {
		want := "S_" + base64.RawURLEncoding.EncodeToString(binary.AppendUvarint(nil, uint64(n)))
		if got := string(Append([]byte("x"), Segment, n)); got != "x"+want {
			t.Errorf("Append(x, S, %d) = %q, want %q", n, got, "x"+want)
		}
		if got := Encode(Segment, n); got != want {
			t.Errorf("Encode(S, %d) = %q, want %q", n, got, want)
		}
		if got := testing.AllocsPerRun(10, func() { _ = Encode(Contact, n) }); got > 1 {
			t.Errorf("Encode(C, %d) made %v allocations, want 1 (its string)", n, got)
		}
	}
}

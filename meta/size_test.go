package meta

import "testing"

func TestHumanSize(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", KiB: "1.0 KiB", 12*KiB + 512: "12.5 KiB",
		4 * MiB: "4.0 MiB", GiB + GiB/5: "1.2 GiB"} {
		if got := HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

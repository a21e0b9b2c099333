package runtime

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckCode(t *testing.T) {
	for _, c := range []struct {
		limit, size uint64
		ok          bool
	}{
		{0, DefaultCodeLimit, true},
		{0, DefaultCodeLimit + 1, false},
		{2 << 20, 2 << 20, true},
		{2 << 20, 2<<20 + 1, false},
		{1 << 30, MaxCodeLimit, true}, // a larger limit counts as the maximum
		{1 << 30, MaxCodeLimit + 1, false},
		{100, 101, false},
	} {
		err := Config{CodeLimit: c.limit}.CheckCode(make([]byte, c.size))
		if c.ok != (err == nil) {
			t.Errorf("limit %d, %d bytes: %v", c.limit, c.size, err)
		}
		if err != nil && (!errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "max code")) {
			t.Errorf("limit %d, %d bytes: %v does not wrap ErrLimit naming the max code", c.limit, c.size, err)
		}
	}
}

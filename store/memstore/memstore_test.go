package memstore

import (
	"testing"

	"github.com/tinycontainer/tinycontainer/store"
	"github.com/tinycontainer/tinycontainer/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return New() })
}

func TestHammer(t *testing.T) {
	s := New()
	defer s.Close()
	storetest.Hammer(t, s, 6, 300)
}

// Package testgrant signs tenant grants for the tests of several
// packages: what `tenant grant` writes, from a ceiling and endpoint rules.
package testgrant

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"

	"github.com/tinycontainer/tinycontainer/meta"
	"github.com/tinycontainer/tinycontainer/trust"
)

// Ceiling is a small ceiling for tenant: 64 KiB of memory, 4 KiB of
// storage, a 10 ms budget, a 50 ms period, the default priority and code
// size, no endpoint.
func Ceiling(tenant string) meta.Ceiling {
	return meta.Ceiling{Tenant: tenant, MaxMemory: 64 * meta.KiB, MaxStorage: 4 * meta.KiB,
		MaxBudget: 10 * time.Millisecond, MinPeriod: 50 * time.Millisecond, MaxPriority: meta.DefaultMaxPriority, MaxCode: meta.DefaultMaxCode}
}

// Sign is the owner's grant of c, with the endpoint rules allow added
// ("sensor/+:read", "log:write", ...), to the tenant's key.
func Sign(t testing.TB, c meta.Ceiling, tenant ed25519.PublicKey, owner ed25519.PrivateKey, allow ...string) []byte {
	t.Helper()
	for _, a := range allow {
		r, err := meta.ParseAllow(a)
		if err != nil {
			t.Fatal(err)
		}
		c.Allow = append(c.Allow, r)
	}
	cj, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	g, err := trust.SignGrant(cj, tenant, owner)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

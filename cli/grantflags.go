package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/tinycontainer/tinycontainer/meta"
)

// ceilingFlags are the flags of `tenant grant` that make up a ceiling.
type ceilingFlags struct {
	allow, rates         []string
	maxMem, maxStore     string
	maxCode, maxCPU      string
	maxBudget, minPeriod time.Duration
	maxPriority          int
}

func (f *ceilingFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringArrayVar(&f.allow, "allow", nil, "PATTERN:op,op granted (repeatable)")
	fs.StringVar(&f.maxMem, "max-memory", "64KiB", "largest limits.memory allowed")
	fs.StringVar(&f.maxStore, "max-storage", "4KiB", "largest limits.storage allowed")
	fs.DurationVar(&f.maxBudget, "max-budget", 10*time.Millisecond, "largest schedule.budget allowed")
	fs.DurationVar(&f.minPeriod, "min-period", 10*time.Millisecond, "smallest schedule.period allowed")
	fs.IntVar(&f.maxPriority, "max-priority", meta.DefaultMaxPriority, "highest schedule.priority allowed (0..15)")
	fs.StringVar(&f.maxCPU, "max-cpu", "", "share of the device's CPU all the tenant's containers together may use, P% (1..100; default no cap)")
	fs.StringVar(&f.maxCode, "max-code", "1MiB", "largest guest code allowed (at most 4MiB)")
	fs.StringArrayVar(&f.rates, "max-rate", nil, "PATTERN=N/s: at most N calls per second per container to each endpoint PATTERN matches (repeatable)")
}

// ceiling builds and validates the ceiling of tenant; errors are usage errors.
func (f *ceilingFlags) ceiling(tenant string) (*meta.Ceiling, error) {
	c := &meta.Ceiling{Tenant: tenant, MaxBudget: f.maxBudget, MinPeriod: f.minPeriod, MaxPriority: f.maxPriority}
	for _, a := range f.allow {
		r, err := meta.ParseAllow(a)
		if err != nil {
			return nil, usageError{err}
		}
		c.Allow = append(c.Allow, r)
	}
	for _, s := range f.rates {
		r, err := meta.ParseRateCeiling(s)
		if err != nil {
			return nil, usageError{err}
		}
		c.MaxRate = append(c.MaxRate, r)
	}
	var err error
	if c.MaxMemory, err = meta.ParseSize(f.maxMem); err != nil {
		return nil, usagef("--max-memory: %v", err)
	}
	if c.MaxStorage, err = meta.ParseSize(f.maxStore); err != nil {
		return nil, usagef("--max-storage: %v", err)
	}
	if c.MaxCode, err = meta.ParseSize(f.maxCode); err != nil {
		return nil, usagef("--max-code: %v", err)
	}
	if f.maxCPU != "" {
		if c.MaxCPU, err = meta.ParsePercent(f.maxCPU); err != nil {
			return nil, usagef("--max-cpu: %v", err)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

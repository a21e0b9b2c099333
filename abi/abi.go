// Package abi holds the numbers of the guest ABI (SPEC sections 2-4): the
// endpoint operations and the errno values. It is the one table every
// runtime, endpoint and wire format takes its codes from.
package abi

import (
	"errors"
	"fmt"
	"strings"
)

// Op is an endpoint operation (SPEC section 3).
type Op uint32

const (
	OpRead    Op = 1
	OpWrite   Op = 2
	OpGet     Op = 3
	OpPut     Op = 4
	OpDelete  Op = 5
	OpPublish Op = 6
	OpInvoke  Op = 7

	maxOp = OpInvoke
)

var opNames = [...]string{"", "read", "write", "get", "put", "delete", "publish", "invoke"}

func (o Op) String() string {
	if o >= 1 && o <= maxOp {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint32(o))
}

// ParseOp returns the Op named s ("read", "write", ...).
func ParseOp(s string) (Op, error) {
	for i := 1; i < len(opNames); i++ {
		if opNames[i] == s {
			return Op(i), nil
		}
	}
	return 0, fmt.Errorf("unknown op %q (want one of %s)", s, strings.Join(opNames[1:], ", "))
}

// OpSet is a set of ops as a bit mask (bit n = Op n).
type OpSet uint16

// OpSetOf returns the set holding ops.
func OpSetOf(ops ...Op) OpSet {
	var s OpSet
	for _, o := range ops {
		s |= 1 << o
	}
	return s
}

// Has reports whether o is in s. Ops out of range are never in a set.
func (s OpSet) Has(o Op) bool { return o <= maxOp && s&(1<<o) != 0 }

// Ops lists the ops of s in ascending order.
func (s OpSet) Ops() []Op {
	var out []Op
	for o := Op(1); o <= maxOp; o++ {
		if s.Has(o) {
			out = append(out, o)
		}
	}
	return out
}

func (s OpSet) String() string {
	var names []string
	for _, o := range s.Ops() {
		names = append(names, o.String())
	}
	return strings.Join(names, ",")
}

// Errno is a positive error number; guests see it negated (SPEC section 4).
type Errno int32

const (
	EPERM    Errno = 1
	ENOENT   Errno = 2
	EIO      Errno = 5 // the host could not do it (the storage failed); version 2
	EBADF    Errno = 9
	EAGAIN   Errno = 11
	EFAULT   Errno = 14
	EINVAL   Errno = 22
	ENOSPC   Errno = 28
	ENOSYS   Errno = 38
	EMSGSIZE Errno = 90
)

var errnoNames = map[Errno]string{
	EPERM: "EPERM", ENOENT: "ENOENT", EIO: "EIO", EBADF: "EBADF", EAGAIN: "EAGAIN", EFAULT: "EFAULT",
	EINVAL: "EINVAL", ENOSPC: "ENOSPC", ENOSYS: "ENOSYS", EMSGSIZE: "EMSGSIZE",
}

// Error makes Errno usable as a Go error, so host code can return and wrap it.
func (e Errno) Error() string {
	if n, ok := errnoNames[e]; ok {
		return n
	}
	return fmt.Sprintf("errno %d", int32(e))
}

// Result is the value a guest sees for this errno: -errno.
func (e Errno) Result() int32 { return -int32(e) }

// ErrnoOf maps an error to the errno a guest should see: the Errno in its
// chain, or EINVAL for any other error.
func ErrnoOf(err error) Errno {
	var e Errno
	if errors.As(err, &e) {
		return e
	}
	return EINVAL
}

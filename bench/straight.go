package bench

import "encoding/binary"

// straightLineGuest is a WebAssembly guest whose tc_main calls, forever,
// one function of straight-line code of nearly the largest size a
// function may have (128 KiB): 65,000 calls of a small function adding to
// a global, ~2 ms of CPU with no loop and no branch. Before issue 10 such
// a body was charged once per call, so the checkpoints came that far
// apart; its preemption latency is what cutting straight-line code into
// pieces bounds. Built here rather than by `make guests` because it is
// generated (no source to keep).
func straightLineGuest() []byte {
	u32 := func(b []byte, v uint32) []byte { return binary.AppendUvarint(b, uint64(v)) }
	section := func(b []byte, id byte, payload []byte) []byte {
		b = append(b, id)
		b = u32(b, uint32(len(payload)))
		return append(b, payload...)
	}
	b := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	b = section(b, 1, []byte{2, 0x60, 0, 0, 0x60, 0, 1, 0x7F}) // () -> (), () -> (i32)
	b = section(b, 3, []byte{3, 0, 0, 1})                      // f, run, tc_main
	b = section(b, 6, []byte{1, 0x7F, 1, 0x41, 0, 0x0B})       // (global (mut i32) (i32.const 0))
	b = section(b, 7, append([]byte{1, 7}, append([]byte("tc_main"), 0, 2)...))
	f := []byte{0}
	for range 15 {
		f = append(f, 0x23, 0, 0x41, 1, 0x6A, 0x24, 0) // g += 1
	}
	f = append(f, 0x0B)
	run := []byte{0}
	for len(run) < 127<<10 {
		run = append(run, 0x10, 0) // call f
	}
	run = append(run, 0x0B)
	main := []byte{0, 0x03, 0x40, 0x10, 1, 0x0C, 0, 0x0B, 0x41, 0, 0x0B} // loop: call run; br 0
	code := u32(nil, 3)
	for _, body := range [][]byte{f, run, main} {
		code = u32(code, uint32(len(body)))
		code = append(code, body...)
	}
	return section(b, 10, code)
}

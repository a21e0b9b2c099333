package tflite

// An inference is a host call that can take milliseconds of CPU (2^28
// multiply-accumulates at most). The kernels report the work they do at
// fine-grained points (per output pixel, per few filter rows, per chunk of
// elements), and every PaceWork units of it the caller's Pace function
// runs: there the caller may suspend the inference (it goes on where it
// was when Pace returns) or stop it. Nothing of the arithmetic changes, so
// results stay bit-exact.

// PaceWork is how many units of work (multiply-accumulates, or elements
// for the other operators) an inference does between two calls of its
// Pace function: about 10 µs with the AVX2 kernels, 50 µs with the
// pure-Go ones.
const PaceWork = 1 << 16

// paceChunk is how many elements of an elementwise operator (ADD, the
// pools' windows, SOFTMAX rows, RESHAPE bytes) run between two reports.
const paceChunk = 1 << 14

// Pace is called during an inference every PaceWork units of work. It may
// block (the inference is suspended meanwhile). Returning true stops the
// inference: Invoke returns ErrStopped and the output is not written.
type Pace func() (stop bool)

// pacer counts an inference's work between two calls of its Pace.
type pacer struct {
	left    int
	fn      Pace
	stopped bool
	// over is the most work reported past PaceWork at one call since the
	// interpreter was made (the distance between two calls is at most
	// PaceWork + over): what one report's unit of work can be.
	over int
}

// reset starts an inference paced by fn (nil: never stopped).
func (p *pacer) reset(fn Pace) { p.fn, p.left, p.stopped = fn, PaceWork, false }

// tick counts n units of work; it reports whether the inference must
// stop (the kernel returns at once).
func (p *pacer) tick(n int) bool {
	p.left -= n
	if p.left > 0 {
		return false
	}
	return p.call()
}

func (p *pacer) call() bool {
	p.over = max(p.over, -p.left)
	p.left = PaceWork
	if !p.stopped && p.fn != nil && p.fn() {
		p.stopped = true
	}
	return p.stopped
}

// tick counts n units of the kernel's work (see pacer.tick); kernels run
// outside an interpreter (tests) have no pacer.
func (s *scratch) tick(n int) bool {
	if s.p == nil {
		return false
	}
	return s.p.tick(n)
}

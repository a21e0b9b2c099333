package ebpf

// Raw eBPF encoding (RFC 9669). An instruction is 8 bytes, little-endian:
// opcode, dst (low nibble) and src (high nibble) registers, a signed 16-bit
// offset and a signed 32-bit immediate. lddw takes two slots.
const (
	insnSize = 8

	// Instruction classes (low 3 bits of the opcode).
	classLD    = 0x00
	classLDX   = 0x01
	classST    = 0x02
	classSTX   = 0x03
	classALU   = 0x04
	classJMP   = 0x05
	classJMP32 = 0x06
	classALU64 = 0x07

	// Operand source for ALU and jumps.
	srcK = 0x00 // the immediate
	srcX = 0x08 // the src register

	// ALU operations (high 4 bits).
	aluADD  = 0x00
	aluSUB  = 0x10
	aluMUL  = 0x20
	aluDIV  = 0x30
	aluOR   = 0x40
	aluAND  = 0x50
	aluLSH  = 0x60
	aluRSH  = 0x70
	aluNEG  = 0x80
	aluMOD  = 0x90
	aluXOR  = 0xa0
	aluMOV  = 0xb0
	aluARSH = 0xc0
	aluEND  = 0xd0

	// Jump operations (high 4 bits).
	jmpJA   = 0x00
	jmpJEQ  = 0x10
	jmpJGT  = 0x20
	jmpJGE  = 0x30
	jmpJSET = 0x40
	jmpJNE  = 0x50
	jmpJSGT = 0x60
	jmpJSGE = 0x70
	jmpCALL = 0x80
	jmpEXIT = 0x90
	jmpJLT  = 0xa0
	jmpJLE  = 0xb0
	jmpJSLT = 0xc0
	jmpJSLE = 0xd0

	// Load/store sizes (bits 3-4) and modes (bits 5-7).
	sizeW  = 0x00
	sizeH  = 0x08
	sizeB  = 0x10
	sizeDW = 0x18

	modeIMM    = 0x00
	modeMEM    = 0x60
	modeMEMSX  = 0x80
	modeATOMIC = 0xc0

	// Atomic operations, in the immediate of an atomic store.
	atomicADD     = 0x00
	atomicOR      = 0x40
	atomicAND     = 0x50
	atomicXOR     = 0xa0
	atomicFETCH   = 0x01
	atomicXCHG    = 0xe0 | atomicFETCH
	atomicCMPXCHG = 0xf0 | atomicFETCH

	rawLDDW = classLD | modeIMM | sizeDW // 0x18

	// Source field of a call: a helper, or a bpf-to-bpf call relative to
	// the next instruction.
	callHelper = 0
	callLocal  = 1

	// Guest ABI helpers (SPEC section 2).
	helperOpen  = 1
	helperCall  = 2
	helperClose = 3

	// Registers: r0 result, r1-r5 arguments, r6-r9 callee-saved, r10 the
	// read-only frame pointer.
	numRegs = 11
	regFP   = 10
)

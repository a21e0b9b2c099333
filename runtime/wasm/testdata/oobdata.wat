;; A data segment past the end of the memory: the instrumenter refuses it
;; (instantiating it would trap; wazero's 32-bit builds could panic).
(module
  (memory 1)
  (data (i32.const 65535) "xy")
  (func (export "tc_main") (result i32) (i32.const 0)))

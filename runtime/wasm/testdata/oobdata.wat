;; A data segment past the end of the memory: instantiation fails after
;; the memory is made.
(module
  (memory 1)
  (data (i32.const 65535) "xy")
  (func (export "tc_main") (result i32) (i32.const 0)))

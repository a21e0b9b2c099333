;; Refused at Compile: an import the runtime does not offer.
(module
  (import "env" "mem" (memory 1))
  (func (export "tc_main") (result i32) (i32.const 0)))

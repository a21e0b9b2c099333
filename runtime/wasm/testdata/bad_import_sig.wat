;; Refused at Compile: an import the runtime does not offer.
(module
  (import "tc" "open" (func (param i32) (result i32)))
  (func (export "tc_main") (result i32) (i32.const 0)))

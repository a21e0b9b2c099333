;; Refused at Compile: an import the runtime does not offer.
(module
  (import "env" "foo" (func))
  (func (export "tc_main") (result i32) (i32.const 0)))

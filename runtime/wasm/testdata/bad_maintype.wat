;; Refused at Compile: tc_main of the wrong type.
(module (func (export "tc_main") (param i32) (result i32) (local.get 0)))

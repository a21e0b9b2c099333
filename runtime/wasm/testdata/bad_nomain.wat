;; Refused at Compile: no tc_main.
(module (func (export "main") (result i32) (i32.const 0)))

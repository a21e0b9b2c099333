;; Refused at Compile: needs 4 pages of memory.
(module (memory 4) (func (export "tc_main") (result i32) (i32.const 0)))

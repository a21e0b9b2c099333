;; Refused at Compile: an import the runtime does not offer.
(module
  (import "wasi_snapshot_preview1" "path_open" (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (func (export "tc_main") (result i32) (i32.const 0)))

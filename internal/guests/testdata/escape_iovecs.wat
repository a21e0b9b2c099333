;; escape_iovecs: fd_write with a list of 4 million empty iovecs, in a loop:
;; each call would read them all for no bytes written.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory 512)
  (func (export "tc_main") (result i32)
    (loop $l
      (drop (call $write (i32.const 1) (i32.const 16) (i32.const 4000000) (i32.const 8)))
      (br $l))
    (i32.const 0)))

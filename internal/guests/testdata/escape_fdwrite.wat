;; escape_fdwrite: a loop of fd_write of 4 KiB to standard output (issue
;; 10: with an unrated log it wrote 99 MB in 120 s against its budget).
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory 1)
  (data (i32.const 0) "\10\00\00\00\00\10\00\00") ;; iovec: 4096 bytes at 16
  (func (export "tc_main") (result i32)
    (loop $l
      (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (br $l))
    (i32.const 0)))

;; escape_random_start: the random_get loop as the start function (issue
;; 10: 2.2 s against the 100 ms budget of instantiation).
(module
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (memory 16)
  (func $start
    (loop $l
      (drop (call $random (i32.const 0) (i32.mul (memory.size) (i32.const 65536))))
      (br $l)))
  (start $start)
  (func (export "tc_main") (result i32) (i32.const 0)))

;; escape_random: a loop of wasi random_get over all of the guest's memory
;; (16 MiB). Issue 10: a host call was charged like one instruction, so
;; this ran over 120 s against a 20 ms budget.
(module
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (memory 256)
  (func (export "tc_main") (result i32)
    (loop $l
      (drop (call $random (i32.const 0) (i32.mul (memory.size) (i32.const 65536))))
      (br $l))
    (i32.const 0)))

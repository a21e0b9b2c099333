;; 1000 calls of tc.call in a loop: the host call benchmark.
(module
  (import "tc" "call" (func $call (param i32 i32 i32 i32 i32) (result i32)))
  (func (export "tc_main") (result i32) (local $i i32) (local $acc i32)
    (loop $l
      (local.set $acc (i32.add (local.get $acc)
        (call $call (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0))))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 1000))))
    (local.get $acc)))

;; Instantiation fails after the memory is made: mode (from tc.open in the
;; start function) 1 traps in the start function, mode 2 loops until the
;; init budget runs out. The data segment is in bounds.
(module
  (import "tc" "open" (func $mode (param i32 i32) (result i32)))
  (memory 1)
  (data (i32.const 100) "x")
  (func $start
    (local $m i32)
    (local.set $m (call $mode (i32.const 0) (i32.const 0)))
    (if (i32.eq (local.get $m) (i32.const 1)) (then (unreachable)))
    (if (i32.eq (local.get $m) (i32.const 2)) (then (loop $l (br $l)))))
  (start $start)
  (func (export "tc_main") (result i32) (i32.load8_u (i32.const 100))))

;; Guest memory reuse: tc_main returns the word at an address and leaves a
;; marker there, so a fresh instance must return 0 on its first run. Mode
;; (from tc.open) 1 grows the memory to 5 pages first and uses an address
;; in the grown part; mode 3 never ends, writing to memory all along.
(module
  (import "tc" "open" (func $mode (param i32 i32) (result i32)))
  (memory 1)
  (func (export "tc_main") (result i32) (local $addr i32) (local $old i32) (local $m i32)
    (local.set $addr (i32.const 60000))
    (local.set $m (call $mode (i32.const 0) (i32.const 0)))
    (if (i32.eq (local.get $m) (i32.const 3))
      (then
        (loop $l
          (i32.store (i32.const 1000) (i32.add (i32.load (i32.const 1000)) (i32.const 1)))
          (br $l))))
    (if (i32.eq (local.get $m) (i32.const 1))
      (then
        (if (i32.lt_u (memory.size) (i32.const 5))
          (then (drop (memory.grow (i32.const 4)))))
        (local.set $addr (i32.const 300000))))
    (local.set $old (i32.load (local.get $addr)))
    (i32.store (local.get $addr) (i32.const 0x5eed))
    (local.get $old)))

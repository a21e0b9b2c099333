;; loop(n) calls tc.call n times and returns the sum of the results: the
;; guest of BareHostCall (measure.go holds its bytes; a test compares).
(module
  (import "tc" "call" (func $call (param i32 i32 i32 i32 i32) (result i32)))
  (func (export "loop") (param $n i32) (result i32) (local $acc i32)
    (block $done
      (br_if $done (i32.eqz (local.get $n)))
      (loop $l
        (local.set $acc (i32.add (local.get $acc)
          (call $call (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0))))
        (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
    (local.get $acc)))

;; Loop shapes for the instrumenter: innermost loops that it wraps (their
;; checkpoint out of line, branch depths renumbered), loops it checks
;; inline (outer loops, loops with parameters, loops touching very many
;; locals), loops charged through a call, and runaways of each kind. The
;; exports with a parameter return a value that depends on every path.
(module
  (type $i2i (func (param i32) (result i32)))
  (type $ii2i (func (param i32 i32) (result i32)))
  (table 2 funcref)
  (elem (i32.const 0) $work $leaf)

  ;; br_table and br out of wrapped loops (innermost loops in sequence)
  ;; to blocks around them, a value-carrying branch out of a loop with a
  ;; result, and a branch to the function's own label.
  (func (export "brtable") (param $n i32) (result i32) (local $i i32) (local $acc i32)
    (block $out (result i32)
      (block $b2
        (block $b1
          (local.set $acc
            (loop $l1 (result i32)
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (local.set $acc (i32.add (local.get $acc) (local.get $i)))
              (drop (br_if $out (local.get $acc) (i32.gt_u (local.get $acc) (i32.const 200))))
              (br_table $l1 $b1 $b2 $l1
                (i32.rem_u (i32.add (local.get $i) (local.get $n)) (i32.const 4))))))
        ;; $b1
        (loop $l2
          (local.set $acc (i32.mul (i32.add (local.get $acc) (i32.const 1)) (i32.const 3)))
          (if (i32.gt_u (local.get $acc) (i32.const 100000))
            (then (br 4 (i32.sub (local.get $acc) (i32.const 1))))) ;; the function's label
          (br_if $l2 (i32.lt_u (local.get $acc) (i32.const 5000))))
        (return (i32.add (local.get $acc) (i32.const 7))))
      ;; $b2
      (i32.sub (local.get $acc) (local.get $n))))

  ;; A wrapped loop that touches a local of every value type: each is
  ;; saved around the checkpoint in a scratch global of its type.
  (func (export "types") (param $n i32) (result i32)
    (local $a i64) (local $b f32) (local $c f64) (local $v v128) (local $f funcref) (local $e externref) (local $i i32)
    (local.set $f (ref.func $leaf))
    (loop $l
      (local.set $a (i64.add (local.get $a) (i64.extend_i32_u (local.get $i))))
      (local.set $b (f32.add (local.get $b) (f32.const 0.5)))
      (local.set $c (f64.add (local.get $c) (f64.const 0.25)))
      (local.set $v (i32x4.add (local.get $v) (i32x4.splat (local.get $i))))
      (local.set $e (ref.null extern))
      (if (ref.is_null (local.get $f)) (then (unreachable)))
      (if (i32.eqz (ref.is_null (local.get $e))) (then (unreachable)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (i32.add
      (i32.add (i32.wrap_i64 (local.get $a)) (i32.trunc_f32_u (local.get $b)))
      (i32.add (i32.trunc_f64_u (local.get $c)) (i32x4.extract_lane 3 (local.get $v)))))

  ;; A loop with parameters and results (a type-index block type):
  ;; checked inline.
  (func (export "params") (param $n i32) (result i32)
    i32.const 1 ;; count
    i32.const 0 ;; acc
    (loop $l (param i32 i32) (result i32 i32)
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (call $step)
      (br_if $l (i32.gt_s (local.get $n) (i32.const 0))))
    i32.add)
  (func $step (param i32 i32) (result i32 i32)
    (i32.add (local.get 0) (i32.const 1))
    (i32.add (local.get 1) (local.get 0)))

  ;; $work spends fuel (it calls indirectly), so a loop that calls it
  ;; on every iteration is charged through the call; $leaf is free.
  (func $work (type $i2i)
    (i32.add (call_indirect (type $i2i) (local.get 0) (i32.const 1)) (i32.const 1)))
  (func $leaf (type $i2i) (i32.mul (local.get 0) (i32.const 3)))
  (func (export "fold") (param $n i32) (result i32) (local $acc i32)
    ;; charged through $work
    (loop $l
      (local.set $acc (call $work (local.get $acc)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get $n) (i32.const 0))))
    ;; the branch back comes first: checked at the header
    (local.set $n (i32.const 10))
    (loop $m
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $m (i32.and (local.get $n) (i32.const 1)))
      (local.set $acc (call $work (local.get $acc)))
      (br_if $m (i32.gt_s (local.get $n) (i32.const 0))))
    (local.get $acc))

  ;; An outer loop (checked inline) around an inner one (wrapped).
  (func (export "outer") (param $n i32) (result i32) (local $i i32) (local $j i32) (local $acc i32)
    (loop $o
      (local.set $j (i32.const 0))
      (loop $in
        (local.set $acc (i32.add (local.get $acc) (i32.xor (local.get $i) (local.get $j))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $in (i32.lt_u (local.get $j) (local.get $n))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $o (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc))

  ;; A function of 70 parameters (its entry check stays inline) with a
  ;; loop that touches 70 locals (its check too).
  (func $wide (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32
                     i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32
                     i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32
                     i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (result i32)
    (loop $l
      (local.set 1 (i32.add (local.get 1) (local.get 0)))
      (local.set 2 (i32.add (local.get 2) (local.get 1)))
      (local.set 3 (i32.add (local.get 3) (local.get 2)))
      (local.set 4 (i32.add (local.get 4) (local.get 3)))
      (local.set 5 (i32.add (local.get 5) (local.get 4)))
      (local.set 6 (i32.add (local.get 6) (local.get 5)))
      (local.set 7 (i32.add (local.get 7) (local.get 6)))
      (local.set 8 (i32.add (local.get 8) (local.get 7)))
      (local.set 9 (i32.add (local.get 9) (local.get 8)))
      (local.set 10 (i32.add (local.get 10) (local.get 9)))
      (local.set 11 (i32.add (local.get 11) (local.get 10)))
      (local.set 12 (i32.add (local.get 12) (local.get 11)))
      (local.set 13 (i32.add (local.get 13) (local.get 12)))
      (local.set 14 (i32.add (local.get 14) (local.get 13)))
      (local.set 15 (i32.add (local.get 15) (local.get 14)))
      (local.set 16 (i32.add (local.get 16) (local.get 15)))
      (local.set 17 (i32.add (local.get 17) (local.get 16)))
      (local.set 18 (i32.add (local.get 18) (local.get 17)))
      (local.set 19 (i32.add (local.get 19) (local.get 18)))
      (local.set 20 (i32.add (local.get 20) (local.get 19)))
      (local.set 21 (i32.add (local.get 21) (local.get 20)))
      (local.set 22 (i32.add (local.get 22) (local.get 21)))
      (local.set 23 (i32.add (local.get 23) (local.get 22)))
      (local.set 24 (i32.add (local.get 24) (local.get 23)))
      (local.set 25 (i32.add (local.get 25) (local.get 24)))
      (local.set 26 (i32.add (local.get 26) (local.get 25)))
      (local.set 27 (i32.add (local.get 27) (local.get 26)))
      (local.set 28 (i32.add (local.get 28) (local.get 27)))
      (local.set 29 (i32.add (local.get 29) (local.get 28)))
      (local.set 30 (i32.add (local.get 30) (local.get 29)))
      (local.set 31 (i32.add (local.get 31) (local.get 30)))
      (local.set 32 (i32.add (local.get 32) (local.get 31)))
      (local.set 33 (i32.add (local.get 33) (local.get 32)))
      (local.set 34 (i32.add (local.get 34) (local.get 33)))
      (local.set 35 (i32.add (local.get 35) (local.get 34)))
      (local.set 36 (i32.add (local.get 36) (local.get 35)))
      (local.set 37 (i32.add (local.get 37) (local.get 36)))
      (local.set 38 (i32.add (local.get 38) (local.get 37)))
      (local.set 39 (i32.add (local.get 39) (local.get 38)))
      (local.set 40 (i32.add (local.get 40) (local.get 39)))
      (local.set 41 (i32.add (local.get 41) (local.get 40)))
      (local.set 42 (i32.add (local.get 42) (local.get 41)))
      (local.set 43 (i32.add (local.get 43) (local.get 42)))
      (local.set 44 (i32.add (local.get 44) (local.get 43)))
      (local.set 45 (i32.add (local.get 45) (local.get 44)))
      (local.set 46 (i32.add (local.get 46) (local.get 45)))
      (local.set 47 (i32.add (local.get 47) (local.get 46)))
      (local.set 48 (i32.add (local.get 48) (local.get 47)))
      (local.set 49 (i32.add (local.get 49) (local.get 48)))
      (local.set 50 (i32.add (local.get 50) (local.get 49)))
      (local.set 51 (i32.add (local.get 51) (local.get 50)))
      (local.set 52 (i32.add (local.get 52) (local.get 51)))
      (local.set 53 (i32.add (local.get 53) (local.get 52)))
      (local.set 54 (i32.add (local.get 54) (local.get 53)))
      (local.set 55 (i32.add (local.get 55) (local.get 54)))
      (local.set 56 (i32.add (local.get 56) (local.get 55)))
      (local.set 57 (i32.add (local.get 57) (local.get 56)))
      (local.set 58 (i32.add (local.get 58) (local.get 57)))
      (local.set 59 (i32.add (local.get 59) (local.get 58)))
      (local.set 60 (i32.add (local.get 60) (local.get 59)))
      (local.set 61 (i32.add (local.get 61) (local.get 60)))
      (local.set 62 (i32.add (local.get 62) (local.get 61)))
      (local.set 63 (i32.add (local.get 63) (local.get 62)))
      (local.set 64 (i32.add (local.get 64) (local.get 63)))
      (local.set 65 (i32.add (local.get 65) (local.get 64)))
      (local.set 66 (i32.add (local.get 66) (local.get 65)))
      (local.set 67 (i32.add (local.get 67) (local.get 66)))
      (local.set 68 (i32.add (local.get 68) (local.get 67)))
      (local.set 69 (i32.add (local.get 69) (local.get 68)))
      (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get 0) (i32.const 0))))
    (local.get 69))
  (func (export "wide") (param $n i32) (result i32)
    (call $wide (local.get $n)
      (i32.const 1) (i32.const 2) (i32.const 3) (i32.const 4) (i32.const 5) (i32.const 6) (i32.const 7) (i32.const 8) (i32.const 9) (i32.const 0)
      (i32.const 1) (i32.const 2) (i32.const 3) (i32.const 4) (i32.const 5) (i32.const 6) (i32.const 7) (i32.const 8) (i32.const 9) (i32.const 0)
      (i32.const 1) (i32.const 2) (i32.const 3) (i32.const 4) (i32.const 5) (i32.const 6) (i32.const 7) (i32.const 8) (i32.const 9) (i32.const 0)
      (i32.const 1) (i32.const 2) (i32.const 3) (i32.const 4) (i32.const 5) (i32.const 6) (i32.const 7) (i32.const 8) (i32.const 9) (i32.const 0)
      (i32.const 1) (i32.const 2) (i32.const 3) (i32.const 4) (i32.const 5) (i32.const 6) (i32.const 7) (i32.const 8) (i32.const 9) (i32.const 0)
      (i32.const 1) (i32.const 2) (i32.const 3) (i32.const 4) (i32.const 5) (i32.const 6) (i32.const 7) (i32.const 8) (i32.const 9) (i32.const 0)
      (i32.const 1) (i32.const 2) (i32.const 3) (i32.const 4) (i32.const 5) (i32.const 6) (i32.const 7) (i32.const 8) (i32.const 7)))

  ;; Runaways: each must reach the checkpoint.
  (func (export "spin_table") (result i32) (local $i i32)
    (block $never
      (loop $l
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_table $l $l $never (i32.and (local.get $i) (i32.const 1)))))
    (i32.const 0))
  (func (export "spin_result") (result i32)
    (loop $l (result i32) (br $l)))
  (func (export "spin_fold") (result i32) (local $acc i32)
    (loop $l
      (local.set $acc (call $work (local.get $acc)))
      (br $l))
    (i32.const 0))
  (func (export "spin_params") (result i32)
    (i32.const 0) (i32.const 0)
    (loop $l (param i32 i32) (result i32 i32)
      (call $step)
      (br $l))
    (drop))
  (func (export "spin_outer") (result i32) (local $i i32)
    (loop $o
      (local.set $i (i32.const 0))
      (loop $in
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $in (i32.lt_u (local.get $i) (i32.const 3))))
      (br $o))
    (i32.const 0))
)

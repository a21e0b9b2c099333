;; Tail calls: wat2wasm needs --enable-tail-call, so this source is not a
;; .wat for `make guests`. Rebuild: wat2wasm --enable-tail-call tailcall.wast -o tailcall.wasm
(module
  (func $even (param i32 i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0)) (then (local.get 1))
      (else (return_call $odd (i32.sub (local.get 0) (i32.const 1)) (i32.add (local.get 1) (i32.const 1))))))
  (func $odd (param i32 i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0)) (then (i32.sub (i32.const 0) (local.get 1)))
      (else (return_call $even (i32.sub (local.get 0) (i32.const 1)) (i32.add (local.get 1) (i32.const 2))))))
  (table 1 funcref)
  (elem (i32.const 0) $forever)
  (type $v2i (func (result i32)))
  (func $forever (result i32) (return_call_indirect (type $v2i) (i32.const 0)))
  (func (export "even") (param i32) (result i32) (return_call $even (local.get 0) (i32.const 0)))
  (func (export "tc_main") (result i32) (call $forever))
)

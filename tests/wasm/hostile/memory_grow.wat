;; Hostile: memory.grow without end (memory cap).
(module
  (import "env" "proxy_get_header_map_value" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $p i32)
    (if (i32.gt_u (global.get $heap) (i32.const 60000)) (then (global.set $heap (i32.const 4096))))
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  (data (i32.const 0) "x-attack")
  ;; The attack runs only on requests carrying an `x-attack` header, so the
  ;; next request shows whether the host recovered.
  (func $attacked (result i32)
    (i32.eqz (call $get_header (i32.const 0) (i32.const 0) (i32.const 8) (i32.const 16) (i32.const 20))))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (call $attacked)
      (then (loop $more (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))))
    (i32.const 0))
)

;; Hostile: out-of-range pointers and lengths handed to hostcalls. Every call
;; that reads or writes through them must answer INVALID_MEMORY_ACCESS (6),
;; a local response whose header map holds a field that cannot be one, and
;; a header looked up by a name that is not UTF-8, BAD_ARGUMENT (2); a name
;; that is UTF-8 but names no field, NOT_FOUND (1); any other answer traps (so the request fails), and
;; when all do, the filter adds `x-bad-pointers: ok`.
(module
  (import "env" "proxy_get_header_map_value" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs" (func $get_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_header_map_pairs" (func $set_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $get_prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $local (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buf (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $p i32)
    (if (i32.gt_u (global.get $heap) (i32.const 60000)) (then (global.set $heap (i32.const 4096))))
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  (data (i32.const 0) "x-bad-pointers")
  (data (i32.const 32) "ok")
  (data (i32.const 48) ":path")
  ;; one pair, ("bad name", "1"), in the map wire format (23 bytes)
  (data (i32.const 64) "\01\00\00\00\08\00\00\00\01\00\00\00bad name\001\00")
  ;; a name that is not UTF-8, and one that is but is not ASCII
  (data (i32.const 96) "\ff\fe")
  (data (i32.const 100) "\c3\a9")
  (func $expect1 (param $status i32)
    (if (i32.ne (local.get $status) (i32.const 1)) (then unreachable)))
  (func $expect6 (param $status i32)
    (if (i32.ne (local.get $status) (i32.const 6)) (then unreachable)))
  (func $expect2 (param $status i32)
    (if (i32.ne (local.get $status) (i32.const 2)) (then unreachable)))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    ;; key beyond the end of memory
    (call $expect6 (call $get_header (i32.const 0) (i32.const 65530) (i32.const 100) (i32.const 16) (i32.const 20)))
    ;; return slots beyond the end of memory
    (call $expect6 (call $get_pairs (i32.const 0) (i32.const 70000) (i32.const 20)))
    (call $expect6 (call $get_header (i32.const 0) (i32.const 48) (i32.const 5) (i32.const -4) (i32.const 20)))
    ;; a length that wraps around the address space
    (call $expect6 (call $add_header (i32.const 0) (i32.const 0) (i32.const 14) (i32.const 32) (i32.const -1)))
    (call $expect6 (call $set_pairs (i32.const 0) (i32.const -16) (i32.const 64)))
    (call $expect6 (call $log (i32.const 2) (i32.const 65535) (i32.const 2)))
    (call $expect6 (call $get_prop (i32.const -1) (i32.const 1) (i32.const 16) (i32.const 20)))
    (call $expect6 (call $local (i32.const 200) (i32.const 0) (i32.const 0) (i32.const 65000) (i32.const 4096) (i32.const 0) (i32.const 0) (i32.const -1)))
    ;; the details, read only for a debug line, are still bounds-checked
    (call $expect6 (call $local (i32.const 200) (i32.const 65530) (i32.const 100) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1)))
    (call $expect2 (call $get_header (i32.const 0) (i32.const 96) (i32.const 2) (i32.const 16) (i32.const 20)))
    (call $expect1 (call $get_header (i32.const 0) (i32.const 100) (i32.const 2) (i32.const 16) (i32.const 20)))
    ;; a header name with a space: no answer is set, the request goes on
    (call $expect2 (call $local (i32.const 200) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 64) (i32.const 23) (i32.const -1)))
    ;; a buffer read of nothing (no plugin configuration) is OK and writes
    ;; nothing, as in the reference host, whatever the out-pointers
    (if (call $get_buf (i32.const 7) (i32.const 0) (i32.const 10) (i32.const 65536) (i32.const -4)) (then unreachable))
    (drop (call $add_header (i32.const 0) (i32.const 0) (i32.const 14) (i32.const 32) (i32.const 2)))
    (i32.const 0))
)

;; Hostile service: starts fine and ticks once every 20 ms, then fails on
;; its second tick: with an empty VM configuration it loops forever (the
;; deadline stops it), with any VM configuration it grows its memory past
;; the cap. Each instance logs "hostile service started" when it starts,
;; so restarts can be counted, and "hostile service ticked" on a good tick.
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $tick_period (param i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (global $grow (mut i32) (i32.const 0))
  (global $ticks (mut i32) (i32.const 0))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $p i32)
    (if (i32.gt_u (global.get $heap) (i32.const 60000)) (then (global.set $heap (i32.const 4096))))
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  (data (i32.const 0) "hostile service started")
  (data (i32.const 32) "hostile service ticked")
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (global.set $grow (local.get 1))
    (drop (call $log (i32.const 2) (i32.const 0) (i32.const 23)))
    (drop (call $tick_period (i32.const 20)))
    (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_tick") (param i32)
    (global.set $ticks (i32.add (global.get $ticks) (i32.const 1)))
    (if (i32.lt_u (global.get $ticks) (i32.const 2))
      (then (drop (call $log (i32.const 2) (i32.const 32) (i32.const 22))) (return)))
    (if (i32.eqz (global.get $grow)) (then (loop $forever (br $forever))))
    ;; 4096 pages (256 MiB): over any service's memory_limit.
    (drop (memory.grow (i32.const 4096)))
    (unreachable))
)

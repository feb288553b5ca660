// Package leak is the canary fault: kind "leak" really leaks heap,
// goroutines or file descriptors in-process at a configured rate and shape,
// and frees everything on revert. Users run it to prove their alert path
// end to end; the tests run it to prove the detector.
//
// Goroutines park on channels the canary still holds, so revert can wake
// them. With params.unreachable=true they park on channels nothing can
// reach, which the goroutineleak profile reports; such goroutines can never
// be woken (on Go 1.26.8, waking a goroutine the runtime has declared leaked
// is a fatal "bad g->status in ready"), so revert leaves them and says so.
package leak

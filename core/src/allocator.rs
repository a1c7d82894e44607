//! mimalloc as the global allocator of the language bindings (feature `mimalloc`).
//!
//! Why: a call or a publish allocates many small blocks (request and header maps, hyper's
//! buffers, futures, response bodies) on one core worker and frees some on another. With
//! glibc's malloc that meant arena-lock contention and consolidation: in a `perf` profile
//! of `courier-bench http-ops courier 200000 64`, glibc's allocator took about a quarter
//! of the CPU, 13% of it in futex waits on its locks. Measured with `courier-bench http`
//! (bench/src/main.rs), two alternating runs each: courier's Client at concurrency 64 went
//! from 55-56k to 89-93k calls/s (bare reqwest, in the same process, 73k to 109-114k).
//!
//! Two build options, both for a library that a host loads with `dlopen`:
//! - `local_dynamic_tls`: mimalloc's default initial-exec TLS draws on the small static
//!   TLS reserve that glibc keeps for `dlopen`ed libraries, which other Python extensions
//!   or Node addons may have used up; the load would then fail.
//! - `no_thp`: with transparent huge pages in `madvise` mode, mimalloc's huge-page advice
//!   made RSS grow in 2 MiB steps: 10,000 GETs in flight from Python added 411 MB of RSS,
//!   337 MB without it (glibc's malloc: 307 MB), at the same throughput.
//!
//! It applies only to memory Rust allocates in the courier library; the host's own
//! allocator (CPython's, V8's, the JVM's) is untouched. Memory crosses to a host only by
//! copy or with a finalizer that frees it through Rust again (napi external buffers,
//! uniffi's `RustBuffer`), so every block is freed by the allocator that made it.
//!
//! A library can set a program's allocator only once, so this is a feature: Rust users
//! of the crate keep their own choice.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

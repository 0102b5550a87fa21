// jemalloc's settings for the programs that link it (core/memory.h says why; README, "Memory").
// jemalloc reads this string as it starts, before main(); the environment variable MALLOC_CONF, read
// after it, still overrides each setting.
//   thp:always        madvise(MADV_HUGEPAGE) on its memory: 2 MiB pages where the kernel's THP mode
//                     is "madvise" (Debian's default), 512× fewer faults for the same bytes.
//   dirty_decay_ms:-1 never hand freed pages back to the kernel: a training step reuses what the step
//                     before it freed. Measured: with jemalloc's default decay (10 s), or 30 s and 60
//                     s, the bottom prior's steps faulted as often as under glibc (1.9-2.0 million
//                     faults in 3 steps) and were slower still (35-37 s per step); with -1, 11,654.
//                     The process keeps its peak: it gives nothing back until it exits.
//   muzzy_decay_ms:-1 the same for pages it would otherwise mark MADV_FREE.
// Defined in the programs, not in libvqvae2, so that a program embedding the library keeps its own.
extern "C" {
__attribute__((used)) const char* malloc_conf = "thp:always,dirty_decay_ms:-1,muzzy_decay_ms:-1";
}

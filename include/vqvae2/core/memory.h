// The heap under the tensors.
//
// A training step allocates and frees the same large activations every step: the bottom prior's
// [4, 512, 64, 64] gate inputs are 32 MiB each, more than glibc malloc's largest mmap threshold
// (32 MiB on 64-bit). glibc serves such blocks with a fresh mmap and returns them with munmap, so
// every step faults all of their pages in again, 4 KiB at a time, each fault zeroing its page.
// Measured on a 2-core AMD EPYC (Zen 5), 3 bottom-prior training steps at reference widths: 4.6
// million page faults and 45 s of the 216 s of CPU time in the kernel.
//
// Our programs therefore run on jemalloc (Debian's libjemalloc2), configured in malloc_conf.cpp to
// keep the pages it frees (dirty_decay_ms:-1: the next step reuses them, no faults) and to back its
// memory with transparent huge pages (thp:always: 2 MiB per fault where a fault still happens).
// On that machine, 3 steps then took 11,654 page faults, and a step 22 s instead of 31–33 s (README,
// "Memory"). A program that embeds libvqvae2 chooses its own allocator; linking jemalloc and
// defining the same malloc_conf gives it the same.
#pragma once

#include <string>

namespace vqvae2 {

// What serves malloc in this process: "jemalloc 5.3.0-… (thp:always, dirty_decay_ms:-1)", read
// back from jemalloc itself, or "glibc 2.36 malloc" when jemalloc is not linked.
std::string heap_allocator();

// True when jemalloc serves malloc and keeps the pages it frees (the setting above).
bool heap_keeps_freed_pages();

}  // namespace vqvae2

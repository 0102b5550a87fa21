#include "vqvae2/core/memory.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <torch/torch.h>

namespace vqvae2 {
namespace {

long minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

// Faults taken to allocate and write a 64 MiB tensor: above glibc's largest mmap threshold, as a
// training step's biggest activations are.
long faults_to_fill_64_mib() {
  const auto before = minor_faults();
  auto x = torch::empty({16, 1024, 1024});
  x.fill_(1.0f);
  return minor_faults() - before;
}

TEST(Memory, ProgramsRunOnJemallocWithTheSettingsOfMallocConf) {
#ifdef VQVAE2_HAVE_JEMALLOC
  // Linking jemalloc is not enough: the executable must also export malloc_conf for it to read.
  const auto allocator = heap_allocator();
  EXPECT_NE(allocator.find("jemalloc"), std::string::npos) << allocator;
  EXPECT_NE(allocator.find("thp:always"), std::string::npos) << allocator;
  EXPECT_NE(allocator.find("dirty_decay_ms:-1"), std::string::npos) << allocator;
  EXPECT_TRUE(heap_keeps_freed_pages());
#else
  EXPECT_NE(heap_allocator().find("malloc"), std::string::npos);
  EXPECT_FALSE(heap_keeps_freed_pages());
#endif
}

TEST(Memory, AFreedLargeTensorsPagesServeTheNextOneWithoutFaults) {
  if (!heap_keeps_freed_pages()) GTEST_SKIP() << "glibc malloc returns such blocks to the kernel: " << heap_allocator();
  faults_to_fill_64_mib();  // the first time, the pages have to come from the kernel
  // 64 MiB is 16,384 pages of 4 KiB: the second tensor reuses the first one's pages.
  EXPECT_LT(faults_to_fill_64_mib(), 1000);
}

}  // namespace
}  // namespace vqvae2

#include "vqvae2/core/memory.h"

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <sys/types.h>

#include <fmt/format.h>

namespace vqvae2 {

namespace {

// jemalloc's control interface, looked up at run time so that the library links with any allocator.
using Mallctl = int (*)(const char* name, void* old_value, size_t* old_size, void* new_value, size_t new_size);

Mallctl jemalloc_control() { return reinterpret_cast<Mallctl>(dlsym(RTLD_DEFAULT, "mallctl")); }

template <typename T>
bool read_option(Mallctl control, const char* name, T& value) {
  size_t size = sizeof(T);
  return control(name, &value, &size, nullptr, 0) == 0;
}

}  // namespace

std::string heap_allocator() {
  const auto control = jemalloc_control();
  if (!control) return fmt::format("glibc {} malloc", gnu_get_libc_version());
  const char* version = "?";
  const char* thp = "?";
  ssize_t dirty_decay_ms = 0;
  read_option(control, "version", version);
  read_option(control, "opt.thp", thp);
  read_option(control, "opt.dirty_decay_ms", dirty_decay_ms);
  return fmt::format("jemalloc {} (thp:{}, dirty_decay_ms:{})", version, thp, dirty_decay_ms);
}

bool heap_keeps_freed_pages() {
  const auto control = jemalloc_control();
  ssize_t dirty_decay_ms = 0;
  return control && read_option(control, "opt.dirty_decay_ms", dirty_decay_ms) && dirty_decay_ms < 0;
}

}  // namespace vqvae2

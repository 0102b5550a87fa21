// Whole files in and out.
//
// Crash-safe writes: the bytes go to a temporary file in the same folder, are flushed to the
// disk (fsync), and only then renamed over the target, so a reader (or a run resumed after
// SIGKILL) sees either the old file or the new one, never a torn one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vqvae2 {

void write_file_atomically(const std::string& path, std::string_view bytes);

// Removes the temporary files write_file_atomically left in `folder` (not below it) when its process
// died mid-write (SIGKILL, power loss): <name>.tmp.<pid>.<n> whose process no longer exists. Those of
// a live process, another run writing there now, are left alone. Returns how many were removed.
int64_t remove_stale_temporaries(const std::string& folder);

// Reads a whole file; throws vqvae2::Error with the OS reason on failure.
std::vector<uint8_t> read_file(const std::string& path);

// CRC-32 (zlib's) of `size` bytes, continuing from `crc` (start with 0): the integrity check of
// checkpoints and code stores.
uint32_t crc32_update(uint32_t crc, const void* data, size_t size);

}  // namespace vqvae2

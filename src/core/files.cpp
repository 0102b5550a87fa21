#include "vqvae2/core/files.h"

#include "vqvae2/core/error.h"

#include <fcntl.h>
#include <signal.h>
#include <zlib.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace vqvae2 {

namespace {

void write_all(int fd, std::string_view bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    const auto n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    VQVAE2_CHECK(n > 0, "cannot write '{}': {}", path, std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

}  // namespace

void write_file_atomically(const std::string& path, std::string_view bytes) {
  static std::atomic<uint64_t> counter{0};
  const std::filesystem::path target(path);
  const auto folder = target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  const auto temporary = fmt::format("{}.tmp.{}.{}", path, ::getpid(), counter++);

  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  VQVAE2_CHECK(fd >= 0, "cannot create '{}': {}", temporary, std::strerror(errno));
  try {
    write_all(fd, bytes, temporary);
    VQVAE2_CHECK(::fsync(fd) == 0, "cannot flush '{}' to disk: {}", temporary, std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(temporary.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    fail("cannot move '{}' into place as '{}': {}", temporary, path, std::strerror(error));
  }
  // Make the rename itself durable.
  const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

uint32_t crc32_update(uint32_t crc, const void* data, size_t size) {
  uLong value = crc;
  const auto* bytes = static_cast<const Bytef*>(data);
  while (size > 0) {
    const auto chunk = static_cast<uInt>(std::min<size_t>(size, size_t{1} << 30));
    value = crc32(value, bytes, chunk);
    bytes += chunk;
    size -= chunk;
  }
  return static_cast<uint32_t>(value);
}

int64_t remove_stale_temporaries(const std::string& folder) {
  std::error_code error;
  int64_t removed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(folder, error)) {
    const auto name = entry.path().filename().string();
    const auto at = name.find(".tmp.");
    if (at == std::string::npos) continue;
    const auto pid = std::atol(name.c_str() + at + 5);
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      removed += std::filesystem::remove(entry.path(), error) ? 1 : 0;
    }
  }
  return removed;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  VQVAE2_CHECK(in.good(), "cannot open '{}': {}", path, std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  VQVAE2_CHECK(!in.bad(), "cannot read '{}': {}", path, std::strerror(errno));
  return bytes;
}

}  // namespace vqvae2

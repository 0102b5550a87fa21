#include "vqvae2/core/files.h"

#include "test_util.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <string>

namespace vqvae2 {
namespace {

TEST(Files, AtomicWriteReplacesTheFileAndLeavesNoTemporary) {
  test::TempDir dir;
  const auto path = dir.file("out.bin");
  write_file_atomically(path, "first");
  write_file_atomically(path, std::string("second\0with a zero", 18));
  const auto bytes = read_file(path);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), std::string("second\0with a zero", 18));
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(entry.path().filename(), "out.bin");
  }
  EXPECT_EQ(files, 1);
}

TEST(Files, TemporariesOfDeadProcessesAreSweptThoseOfLiveOnesKept) {
  test::TempDir dir;
  // No process has a pid above the kernel's limit (at most 2^22): a writer killed long ago.
  const auto dead = dir.file("train.vq2.tmp.999999999.0");
  const auto live = dir.file("train.vq2.tmp." + std::to_string(::getpid()) + ".3");
  for (const auto& path : {dead, live, dir.file("train.vq2"), dir.file("notes.tmp")}) test::write_bytes(path, "x");
  EXPECT_EQ(remove_stale_temporaries(dir.path()), 1);
  EXPECT_FALSE(std::filesystem::exists(dead));
  for (const auto& path : {live, dir.file("train.vq2"), dir.file("notes.tmp")}) EXPECT_TRUE(std::filesystem::exists(path)) << path;
  EXPECT_EQ(remove_stale_temporaries(dir.file("no-such-folder")), 0);
}

TEST(Files, ErrorsNameTheFileAndTheReason) {
  test::TempDir dir;
  test::expect_error([&] { read_file(dir.file("missing.bin")); }, "cannot open '" + dir.file("missing.bin") + "'");
  test::expect_error([&] { write_file_atomically(dir.file("no/such/folder/x"), "x"); }, "no/such/folder/x");
}

TEST(Files, Crc32IsZlibsAndContinues) {
  const std::string text = "123456789";
  EXPECT_EQ(crc32_update(0, text.data(), text.size()), 0xCBF43926u);  // the standard check value
  const auto first = crc32_update(0, text.data(), 4);
  EXPECT_EQ(crc32_update(first, text.data() + 4, text.size() - 4), 0xCBF43926u);
}

}  // namespace
}  // namespace vqvae2

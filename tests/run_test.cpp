#include "vqvae2/training/run.h"

#include "test_util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

namespace vqvae2 {
namespace {

TEST(Run, FolderIsCreatedAndTemporariesOfDeadProcessesAreCleared) {
  test::TempDir dir;
  std::filesystem::create_directories(dir.file("run/grids"));
  // pid 2^22 + 1 is above Linux's pid_max default and never runs; this process's own pid does.
  test::write_bytes(dir.file("run/vqvae.ckpt.tmp.4194305.0"), "half a checkpoint");
  test::write_bytes(dir.file("run/grids/a.png.tmp.4194305.1"), "half a grid");
  const auto mine = dir.file("run/metrics.tmp." + std::to_string(::getpid()) + ".0");
  test::write_bytes(mine, "in progress");
  RunFolder run(dir.file("run"));
  EXPECT_TRUE(std::filesystem::exists(dir.file("run/vqvae.ckpt.tmp.4194305.0"))) << "removed before create()";
  run.create();
  EXPECT_FALSE(std::filesystem::exists(dir.file("run/vqvae.ckpt.tmp.4194305.0")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("run/grids/a.png.tmp.4194305.1")));
  EXPECT_TRUE(std::filesystem::exists(mine)) << "a live process's temporary file was removed";
  EXPECT_EQ(run.file("x.json"), dir.file("run/x.json"));
  run.write_json("x.json", {{"a", 1}});
  EXPECT_EQ(nlohmann::json::parse(test::read_text(run.file("x.json")))["a"], 1);
}

TEST(Run, NothingIsMadeOnDiskUntilCreate) {
  test::TempDir dir;
  const RunFolder run(dir.file("a/run"));
  EXPECT_EQ(run.file("config.json"), dir.file("a/run/config.json"));
  EXPECT_FALSE(std::filesystem::exists(dir.file("a")));
  run.create();
  EXPECT_TRUE(std::filesystem::is_directory(dir.file("a/run/grids")));
  run.create();  // again: an existing folder is fine (a resumed run)
  EXPECT_TRUE(std::filesystem::is_directory(dir.file("a/run/grids")));
}

TEST(Run, AStopRequestIsAFlagUntilCleared) {
  clear_stop_request();
  EXPECT_FALSE(stop_requested());
  request_stop();
  EXPECT_TRUE(stop_requested());
  clear_stop_request();
  EXPECT_FALSE(stop_requested());
}

TEST(Run, NonFiniteLossesStopWithTheStepAndTheCheckpoint) {
  EXPECT_NO_THROW(check_finite(1.5, "loss", 3, ""));
  test::expect_error([] { check_finite(std::nan(""), "the VQ-VAE loss", 42, "runs/x/vqvae.ckpt"); },
                     "the VQ-VAE loss became NaN at step 42");
  test::expect_error([] { check_finite(std::nan(""), "loss", 42, "runs/x/vqvae.ckpt"); },
                     "The last good checkpoint is 'runs/x/vqvae.ckpt'");
  test::expect_error([] { check_finite(INFINITY, "loss", 1, ""); }, "loss became infinite at step 1");
}

}  // namespace
}  // namespace vqvae2

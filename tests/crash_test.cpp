// A real training process killed at random moments (SIGKILL) or asked to stop (SIGTERM) loses
// nothing: every file it leaves is valid, and resuming ends exactly where an uninterrupted run does.
#include "test_util.h"

#include "vqvae2/core/checkpoint.h"
#include "vqvae2/stages/train_vqvae.h"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

namespace vqvae2 {
namespace {

const std::string kRun =
    " --image-size 16 --hidden 16 --res-blocks 1 --res-channels 8 --codes 32 --code-dims 8 --batch-size 16 "
    "--limit 400 --steps 300 --log-every 1 --quiet";
const int64_t kSteps = 300;

// After a kill a temporary file may remain (the next run removes it); after a clean exit none may.
void expect_valid_files(const std::string& run, bool allow_temporaries = false) {
  const auto checkpoint = run + "/vqvae.ckpt";
  if (std::filesystem::exists(checkpoint)) {
    EXPECT_NO_THROW(read_checkpoint(checkpoint, "vqvae")) << "a kill left a damaged checkpoint";
  }
  std::ifstream log(run + "/metrics.jsonl");
  std::string line;
  while (std::getline(log, line)) {
    if (log.eof()) break;  // a last line without its newline may be cut; it is dropped on resume
    EXPECT_NO_THROW(nlohmann::json::parse(line)) << line;
  }
  if (allow_temporaries) return;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(run)) {
    EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos) << "stray temporary file " << entry.path();
  }
}

std::map<std::string, torch::Tensor> model_tensors(const std::string& run) {
  std::map<std::string, torch::Tensor> out;
  const auto loaded = load<VQVAEKind>(run + "/vqvae.ckpt", torch::kCPU);
  for (const auto& p : loaded.model->named_parameters()) out[p.key()] = p.value();
  for (const auto& b : loaded.model->named_buffers()) out[b.key()] = b.value();
  return out;
}

TEST(Crash, KilledAtRandomMomentsAndResumedEqualsAnUninterruptedRun) {
  test::TempDir dir;
  const auto log = dir.file("log.txt");
  const std::string run_flags = kRun + " --checkpoint-every 1";
  ASSERT_EQ(test::wait_for(test::spawn_vqvae2("train-vqvae --out " + dir.file("straight") + run_flags, log)), 0);

  const auto run = dir.file("killed");
  const auto logged_steps = [&] {
    std::ifstream metrics(run + "/metrics.jsonl");
    int64_t lines = 0;
    for (std::string line; std::getline(metrics, line);) ++lines;
    return lines;
  };
  // Kill at random moments during training: once the log has reached a random step, after a
  // random few milliseconds more (so also in the middle of writing a checkpoint).
  std::mt19937 random(2024);
  int kills = 0;
  for (int attempt = 0; attempt < 20; ++attempt) {
    const bool resume = std::filesystem::exists(run + "/vqvae.ckpt");
    const auto target = logged_steps() + std::uniform_int_distribution<int64_t>(3, 12)(random);
    const int pid = test::spawn_vqvae2("train-vqvae --out " + run + run_flags + (resume ? " --resume" : ""), log);
    ASSERT_GT(pid, 0);
    for (int i = 0; i < 2000 && logged_steps() < target; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 30)(random)));
    ::kill(pid, SIGKILL);
    if (test::wait_for(pid) == 128 + SIGKILL) ++kills;
    expect_valid_files(run, /*allow_temporaries=*/true);
  }
  EXPECT_GE(kills, 15) << "too few kills landed mid-run to test anything";
  const bool resume = std::filesystem::exists(run + "/vqvae.ckpt");
  ASSERT_EQ(test::wait_for(test::spawn_vqvae2("train-vqvae --out " + run + run_flags + (resume ? " --resume" : ""), log)), 0)
      << test::read_text(log);
  expect_valid_files(run);

  const auto a = model_tensors(dir.file("straight"));
  const auto b = model_tensors(run);
  for (const auto& [name, tensor] : a) EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;
  // The log holds every step once.
  std::ifstream metrics(run + "/metrics.jsonl");
  std::vector<int64_t> steps;
  for (std::string line; std::getline(metrics, line);) {
    const auto record = nlohmann::json::parse(line);
    if (!record.contains("event")) steps.push_back(record["step"]);
  }
  ASSERT_EQ(static_cast<int64_t>(steps.size()), kSteps);
  for (int64_t i = 0; i < kSteps; ++i) EXPECT_EQ(steps[i], i + 1);
}

TEST(Crash, SigtermFinishesTheStepWritesACheckpointAndExits130) {
  test::TempDir dir;
  const auto run = dir.file("run");
  const auto log = dir.file("log.txt");
  const int pid = test::spawn_vqvae2("train-vqvae --out " + run + kRun + " --checkpoint-every 1000", log);
  // Wait until training is under way (the first metrics line), then ask it to stop.
  for (int i = 0; i < 300 && !std::filesystem::exists(run + "/metrics.jsonl"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ::kill(pid, SIGTERM);
  EXPECT_EQ(test::wait_for(pid), 130) << test::read_text(log);
  const auto step = read_checkpoint(run + "/vqvae.ckpt", "vqvae").meta["state"]["step"].get<int64_t>();
  EXPECT_GT(step, 0);
  EXPECT_LT(step, kSteps);
  EXPECT_NE(test::read_text(log).find("stopped by signal"), std::string::npos);
  expect_valid_files(run);
  EXPECT_EQ(test::wait_for(test::spawn_vqvae2("train-vqvae --out " + run + kRun + " --resume", log)), 0);
}

}  // namespace
}  // namespace vqvae2

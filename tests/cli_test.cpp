// The vqvae2 binary as a user meets it: help, bad input, and the stage-1 commands end to end.
#include "test_util.h"

#include "vqvae2/image.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

namespace vqvae2 {
namespace {

using test::run_vqvae2;

const std::string kTiny =
    " --image-size 16 --hidden 16 --res-blocks 1 --res-channels 8 --codes 32 --code-dims 8 --batch-size 16 --quiet";

void expect_failure(const std::string& arguments, const std::string& message) {
  const auto result = run_vqvae2(arguments);
  EXPECT_NE(result.exit_code, 0) << arguments << "\n" << result.output;
  EXPECT_NE(result.output.find(message), std::string::npos) << arguments << "\n" << result.output;
  EXPECT_EQ(result.output.find("Exception raised from"), std::string::npos) << "a LibTorch backtrace leaked";
  EXPECT_LT(result.exit_code, 128) << "crashed";
}

TEST(Cli, HelpExplainsEveryCommandAndFlag) {
  const auto top = run_vqvae2("--help");
  EXPECT_EQ(top.exit_code, 0);
  for (const char* command : {"train-vqvae", "reconstruct", "encode", "decode", "bench"}) {
    EXPECT_NE(top.output.find(command), std::string::npos) << command;
  }
  const auto train = run_vqvae2("train-vqvae --help");
  EXPECT_EQ(train.exit_code, 0);
  for (const char* flag : {"--data", "--strides", "--codes", "--dead-code-threshold", "--resume", "--threads", "--device"}) {
    EXPECT_NE(train.output.find(flag), std::string::npos) << flag;
  }
  EXPECT_NE(train.output.find("mnist 32; small 64; reference 256"), std::string::npos) << "preset defaults shown";
}

TEST(Cli, BadFlagsAndValuesAreClearErrors) {
  test::TempDir dir;
  expect_failure("train-vqvae --no-such-flag", "--no-such-flag");
  expect_failure("frobnicate", "frobnicate");
  expect_failure("train-vqvae --image-size banana", "banana");
  expect_failure("train-vqvae --quantizer magic", "magic");
  expect_failure("train-vqvae --out " + dir.file("a") + " --image-size 30 --strides 4,2", "multiple of the total downsampling");
  expect_failure("train-vqvae --out " + dir.file("b") + " --codes 0", "codebook size K must be in [1, 65535]");
  expect_failure("train-vqvae --out " + dir.file("c") + " --batch-size -3", "--batch-size must be positive");
  expect_failure("train-vqvae --out " + dir.file("d") + " --threads -1", "--threads");
  if (!torch::cuda::is_available()) {
    expect_failure("train-vqvae --out " + dir.file("e") + " --device cuda", "no CUDA support");
  }
  expect_failure("train-vqvae --out " + dir.file("f") + " --device tpu", "unknown device");
}

TEST(Cli, BadDataIsAClearError) {
  test::TempDir dir;
  expect_failure("train-vqvae --data " + dir.file("missing") + " --out " + dir.file("r1"), "does not exist");
  std::filesystem::create_directories(dir.file("empty"));
  expect_failure("train-vqvae --data " + dir.file("empty") + " --out " + dir.file("r2"), "no readable images");
  std::filesystem::create_directories(dir.file("bad"));
  save_png(dir.file("bad/ok.png"), torch::zeros({3, 16, 16}, torch::kUInt8));
  test::write_bytes(dir.file("bad/broken.jpg"), "\xff\xd8\xff garbage");
  expect_failure("train-vqvae --data " + dir.file("bad") + " --on-bad-image fail --out " + dir.file("r3") + kTiny,
                 "broken.jpg");
  expect_failure("reconstruct --checkpoint " + dir.file("nothing-here"), "does not exist");
  test::write_bytes(dir.file("fake.ckpt"), "VQV2CKPT");
  expect_failure("reconstruct --checkpoint " + dir.file("fake.ckpt"), "truncated");
}

TEST(Cli, TrainReconstructEncodeDecodeEndToEnd) {
  test::TempDir dir;
  const auto run = dir.file("run");
  auto result = run_vqvae2("train-vqvae --out " + run + " --limit 256 --steps 6" + kTiny);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("validation MSE"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(run + "/vqvae.ckpt"));

  result = run_vqvae2("reconstruct --checkpoint " + run + " --images 4 --out " + dir.file("r.png"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(load_image(dir.file("r.png"), 8, 1).size(0), 1);

  result = run_vqvae2("encode --checkpoint " + run + " --out " + dir.file("codes.vq2") + " --quiet");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("encoded 256 images"), std::string::npos) << result.output;

  result = run_vqvae2("decode --checkpoint " + run + " --codes " + dir.file("codes.vq2") + " --limit 5 --out " +
                      dir.file("decoded"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(std::filesystem::exists(dir.file("decoded/000004.png")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("decoded/000005.png")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("decoded/grid.png")));

  // Continuing with --resume and more steps; a model flag that contradicts the checkpoint is refused.
  result = run_vqvae2("train-vqvae --out " + run + " --resume --steps 8 --quiet");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("after 8 steps"), std::string::npos) << result.output;
  expect_failure("train-vqvae --out " + run + " --resume --steps 9 --hidden 32", "hidden: checkpoint 16, requested 32");
}

}  // namespace
}  // namespace vqvae2

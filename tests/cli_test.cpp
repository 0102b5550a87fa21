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
  for (const char* command : {"pipeline", "train-vqvae", "extract-codes", "train-prior", "sample", "reconstruct", "encode",
                              "decode", "bench"}) {
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

TEST(Cli, ExtractTrainPriorsAndSampleEndToEnd) {
  test::TempDir dir;
  const auto run = dir.file("vqvae");
  ASSERT_EQ(run_vqvae2("train-vqvae --out " + run + " --limit 200 --steps 4" + kTiny).exit_code, 0);
  auto result = run_vqvae2("extract-codes --checkpoint " + run + " --quiet");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(std::filesystem::exists(run + "/codes/train.vq2"));
  EXPECT_TRUE(std::filesystem::exists(run + "/codes/val.vq2"));
  const std::string prior_flags = " --size small --channels 16 --res-channels 16 --condition-channels 16 --heads 2 "
                                  "--steps 3 --batch-size 8 --quiet --codes " + run + "/codes";
  result = run_vqvae2("train-prior --level top --out " + dir.file("top") + prior_flags);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("bits per code"), std::string::npos) << result.output;
  result = run_vqvae2("train-prior --level bottom --out " + dir.file("bottom") + prior_flags);
  ASSERT_EQ(result.exit_code, 0) << result.output;

  result = run_vqvae2("sample --vqvae " + run + " --priors " + dir.file("bottom") + "," + dir.file("top") +
                      " --count 5 --batch-size 3 --quiet --out " + dir.file("s.png") + " --codes-out " + dir.file("s.vq2"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("5 samples"), std::string::npos) << result.output;
  EXPECT_TRUE(std::filesystem::exists(dir.file("s.png")));
  result = run_vqvae2("decode --checkpoint " + run + " --codes " + dir.file("s.vq2") + " --out " + dir.file("sd"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("decoded 5 images"), std::string::npos) << result.output;

  expect_failure("sample --vqvae " + run + " --priors " + dir.file("top"), "no prior given for level 0");
  expect_failure("sample --vqvae " + run + " --priors " + dir.file("top") + "," + dir.file("top"), "two priors");
  expect_failure("sample --vqvae " + run + " --priors " + run, "no prior.ckpt");
  expect_failure("train-prior --codes " + dir.file("nowhere") + " --out " + dir.file("x"), "extract-codes");
  expect_failure("train-prior --level 7 --codes " + run + "/codes --out " + dir.file("y"), "--level must be");
  expect_failure("sample --vqvae " + run + " --priors " + dir.file("top") + "," + dir.file("bottom") + " --top-p 0",
                 "--top-p must be in (0, 1]");
}

TEST(Cli, PipelineRunsEveryStageAndWritesSamples) {
  test::TempDir dir;
  const auto out = dir.file("main");
  const auto result = run_vqvae2("pipeline --out " + out + " --vqvae-steps 20 --prior-steps 6 --samples 4 --quiet");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  for (const char* file : {"vqvae/vqvae.ckpt", "vqvae/metrics.jsonl", "codes/train.vq2", "prior-level1/prior.ckpt",
                           "prior-level0/prior.ckpt", "samples.png"}) {
    EXPECT_TRUE(std::filesystem::exists(out + "/" + file)) << file;
  }
  EXPECT_EQ(load_image(out + "/samples.png", 8, 1).size(0), 1);
  expect_failure("pipeline --out " + out + " --vqvae-steps 20", "--resume");
}

}  // namespace
}  // namespace vqvae2

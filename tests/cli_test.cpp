// The vqvae2 binary as a user meets it: help, bad input, and the stage-1 commands end to end.
#include "speech.h"
#include "test_util.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/files.h"
#include "vqvae2/data/audio.h"
#include "vqvae2/data/image.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdlib>
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
                              "evaluate", "report", "plot",
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

TEST(Cli, TheProgramRunsTheWidestOpenBlasKernelsThisCpuRuns) {
  // OpenBLAS reports the kernels it loaded with OPENBLAS_VERBOSE=2 ("Core: Prescott"); the program
  // restarts itself once when they are older than the CPU runs, so the last report is what it ran.
  const auto loaded = blas_kernels();  // this test's own process: OpenBLAS's own choice
  if (loaded.empty()) GTEST_SKIP() << "the BLAS in use is not OpenBLAS";
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) GTEST_SKIP() << "OPENBLAS_CORETYPE is set: the user's choice";
  const auto better = better_blas_kernels(loaded, cpu_vector_features());
  const auto verbose = run_vqvae2("--version", "OPENBLAS_VERBOSE=2");
  ASSERT_EQ(verbose.exit_code, 0) << verbose.output;
  const auto last = verbose.output.rfind("Core: ");
  ASSERT_NE(last, std::string::npos) << verbose.output;
  const auto ran = verbose.output.substr(last + 6, verbose.output.find('\n', last) - last - 6);
  EXPECT_EQ(ran, better.empty() ? loaded : better) << verbose.output;
  EXPECT_NE(verbose.output.find("vqvae2 0.1.0"), std::string::npos) << verbose.output;
}

TEST(Cli, BadFlagsAndValuesAreClearErrors) {
  test::TempDir dir;
  expect_failure("train-vqvae --no-such-flag", "--no-such-flag");
  expect_failure("frobnicate", "frobnicate");
  expect_failure("train-vqvae --image-size banana", "banana");
  expect_failure("train-vqvae --quantizer magic", "magic");
  expect_failure("train-vqvae --out " + dir.file("a") + " --image-size 30 --strides 4,2", "multiple of the total downsampling");
  expect_failure("train-vqvae --out " + dir.file("b") + " --codes 0", "codebook size K must be in [1, 65535]");
  expect_failure("train-vqvae --out " + dir.file("c") + " --batch-size -3", "batch size must be positive");
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
  // Each image is named after the image its codes came from.
  EXPECT_TRUE(std::filesystem::exists(dir.file("decoded/mnist/00004.png")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("decoded/mnist/00005.png")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("decoded/grid.png")));

  // Looking at the run: scores on its held-out images, its report page, its curves.
  result = run_vqvae2("evaluate --checkpoint " + run + " --json " + dir.file("e.json") + " --out-dir " + dir.file("e"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("PSNR"), std::string::npos) << result.output;
  EXPECT_TRUE(std::filesystem::exists(dir.file("e.json")));
  EXPECT_TRUE(std::filesystem::is_directory(dir.file("e/mnist")));
  result = run_vqvae2("report " + run);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(std::filesystem::exists(run + "/report.html"));
  result = run_vqvae2("plot " + run + " --keys val_mse,loss --out " + dir.file("c.svg"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(std::filesystem::exists(dir.file("c.svg")));
  expect_failure("plot " + run + " --keys nothing_like_it --out " + dir.file("d.svg"), "nothing_like_it");

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
  // The top prior with PixelSNAIL's block and attention after every layer; the bottom one weight-normalised,
  // with learned upsampling and position features: the samplers below run on both.
  result = run_vqvae2("train-prior --level top --out " + dir.file("top") + prior_flags +
                      " --block pixelsnail --attention-every 1");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("bits per code"), std::string::npos) << result.output;
  result = run_vqvae2("train-prior --level bottom --out " + dir.file("bottom") + prior_flags +
                      " --weight-norm true --condition-upsample transposed --condition-position true");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto top_config = nlohmann::json::parse(test::read_text(dir.file("top/config.json")));
  EXPECT_EQ(top_config["config"]["model"]["stack"]["block"], "pixelsnail");
  EXPECT_EQ(top_config["config"]["model"]["stack"]["attention_every"], 1);
  const auto bottom_config = nlohmann::json::parse(test::read_text(dir.file("bottom/config.json")));
  EXPECT_EQ(bottom_config["config"]["model"]["stack"]["weight_norm"], true);
  EXPECT_EQ(bottom_config["config"]["model"]["condition"]["weight_norm"], true);
  EXPECT_EQ(bottom_config["config"]["model"]["condition"]["upsample"], "transposed");
  EXPECT_EQ(bottom_config["config"]["model"]["condition"]["position"], true);

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
  expect_failure("train-prior --level 7 --codes " + run + "/codes --out " + dir.file("y"), "the level must be top, bottom");
  expect_failure("train-prior --codes " + run + "/codes --weight-average 1 --out " + dir.file("z"), "in [0, 1)");
  EXPECT_FALSE(std::filesystem::exists(dir.file("z"))) << "a bad flag left a run folder";
  expect_failure("sample --vqvae " + run + " --priors " + dir.file("top") + "," + dir.file("bottom") + " --top-p 0",
                 "top-p must be in (0, 1]");
  // One top-p for every level, or the top's and the lower levels': each is checked.
  expect_failure("sample --vqvae " + run + " --priors " + dir.file("top") + "," + dir.file("bottom") + " --top-p 0.9,0",
                 "top-p must be in (0, 1]");
  expect_failure("sample --vqvae " + run + " --priors " + dir.file("top") + "," + dir.file("bottom") +
                     " --top-p 0.9,0.8,0.7",
                 "--top-p");
  expect_failure("sample --vqvae " + run + " --priors " + dir.file("top") + "," + dir.file("bottom") + " --candidates 0",
                 "the candidates per top map must be at least 1");
  expect_failure("sample --vqvae " + run + " --priors " + dir.file("top") + "," + dir.file("bottom") + " --guidance -1",
                 "guidance must be >= 0");
  expect_failure("train-prior --codes " + run + "/codes --level bottom --condition-dropout 1 --out " + dir.file("cd"),
                 "condition dropout must be in [0, 1)");
}

// Nonsense flag values: each is refused before any work with a message naming the flag or value.
TEST(Cli, NonsenseValuesAreRefusedWithAClearMessage) {
  test::TempDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--image-size -32", "image size must be in [1, 16384]"},
      {"--image-size 0", "image size must be in [1, 16384]"},
      {"--channels 2", "channels must be 1 (grey) or 3 (RGB)"},
      {"--hidden 0", "hidden width must be an even number"},
      {"--hidden 15", "hidden width must be an even number"},
      {"--res-blocks -1", "residual blocks must be in [0, 256]"},
      {"--res-channels 0", "residual channels must be in [1, 8192]"},
      {"--strides 3", "every stride must be a power of two"},
      {"--strides 0", "every stride must be a power of two"},
      {"--strides 2,2,2,2,2,2,2,2,2", "give 1 to 8 levels"},
      {"--codes 0", "codebook size K must be in [1, 65535]"},
      {"--codes 70000", "codebook size K must be in [1, 65535]"},
      {"--codes 16,16,16", "give one codebook size or one per level"},
      {"--code-dims -4", "code width D must be in [1, 8192]"},
      {"--beta -1", "commitment cost beta must be non-negative"},
      {"--decay 1.5", "EMA decay gamma must be in (0, 1)"},
      {"--epsilon 0", "Laplace epsilon must be positive"},
      {"--dead-code-threshold -1", "dead-code threshold must be non-negative"},
      {"--val-fraction 1.5", "validation fraction must be in [0, 1)"},
      {"--limit -1", "image limit must be >= 0"},
      {"--cache-mb -1", "cache size must be >= 0"},
      {"--batch-size 0", "batch size must be positive"},
      {"--epochs 0 --steps 0", "give a positive number of epochs or steps"},
      {"--steps -5", "steps must be >= 0"},
      {"--lr -1", "learning rate must be positive"},
      {"--lr 0", "learning rate must be positive"},
      {"--log-every 0", "steps between metrics lines must be positive"},
      {"--checkpoint-every 0", "steps between checkpoints must be positive"},
      {"--grid-images -1", "grid images must be >= 0"},
      {"--on-nan maybe", "maybe"},
      {"--on-bad-image ignore", "ignore"},
      {"--batch-size 20000 --limit 100", "larger than the"},
  };
  int index = 0;
  for (const auto& [flags, message] : cases) {
    const auto out = dir.file("r" + std::to_string(index++));
    expect_failure("train-vqvae --out " + out + " " + flags, message);
    // Refused before the run folder is made (the batch larger than the data is found when it is read).
    if (message != "larger than the") {
      EXPECT_FALSE(std::filesystem::exists(out)) << flags;
    }
  }
  RecordProperty("cases", static_cast<int>(cases.size()));
}

TEST(Cli, BadFilesGivenToEveryCommandAreClearErrors) {
  test::TempDir dir;
  const auto run = dir.file("vqvae");
  ASSERT_EQ(run_vqvae2("train-vqvae --out " + run + " --limit 100 --steps 2" + kTiny).exit_code, 0);
  ASSERT_EQ(run_vqvae2("extract-codes --checkpoint " + run + " --quiet").exit_code, 0);
  const std::string prior = " --size small --channels 16 --res-channels 16 --heads 2 --steps 1 --batch-size 8 --quiet";
  ASSERT_EQ(run_vqvae2("train-prior --level top --codes " + run + "/codes --out " + dir.file("top") + prior).exit_code, 0);

  // Files of the wrong kind where a checkpoint or code store belongs.
  expect_failure("extract-codes --checkpoint " + dir.file("top"), "no vqvae.ckpt");
  expect_failure("extract-codes --checkpoint " + dir.file("top") + "/prior.ckpt", "holds a prior checkpoint");
  expect_failure("sample --vqvae " + run + " --priors " + run + "/vqvae.ckpt," + dir.file("top"),
                 "holds a vqvae checkpoint");
  expect_failure("decode --checkpoint " + run + " --codes " + run + "/vqvae.ckpt", "not a vqvae2 code store");
  // Truncated and corrupted files.
  const auto checkpoint = test::read_text(run + "/vqvae.ckpt");
  test::write_bytes(dir.file("cut.ckpt"), checkpoint.substr(0, checkpoint.size() / 3));
  expect_failure("reconstruct --checkpoint " + dir.file("cut.ckpt"), "truncated");
  auto flipped = checkpoint;
  flipped[flipped.size() / 2] ^= 0x10;
  test::write_bytes(dir.file("flipped.ckpt"), flipped);
  expect_failure("encode --checkpoint " + dir.file("flipped.ckpt"), "corrupted");
  test::write_bytes(dir.file("zero.ckpt"), "");
  expect_failure("reconstruct --checkpoint " + dir.file("zero.ckpt"), "not a vqvae2 checkpoint");
  std::filesystem::create_directories(dir.file("badcodes"));
  const auto codes = test::read_text(run + "/codes/train.vq2");
  test::write_bytes(dir.file("badcodes/train.vq2"), codes.substr(0, codes.size() - 9));
  test::write_bytes(dir.file("badcodes/val.vq2"), codes);
  expect_failure("train-prior --level top --codes " + dir.file("badcodes") + " --out " + dir.file("p2") + prior,
                 "truncated");
  // Codes of another model.
  const auto other = dir.file("other");
  ASSERT_EQ(run_vqvae2("train-vqvae --out " + other + " --limit 100 --steps 1 --strides 4" + kTiny).exit_code, 0);
  ASSERT_EQ(run_vqvae2("encode --checkpoint " + other + " --out " + dir.file("other.vq2") + " --quiet").exit_code,
            0);
  expect_failure("decode --checkpoint " + run + " --codes " + dir.file("other.vq2"), "holds codes of levels");
  expect_failure("sample --vqvae " + other + " --priors " + dir.file("top"), "is a prior for level 1, but the VQ-VAE has 1 levels");
  // Bad sampling values.
  expect_failure("sample --vqvae " + run + " --priors " + dir.file("top") + " --count 0", "number of samples must be positive");
  expect_failure("sample --vqvae " + run + " --priors " + dir.file("top") + " --temperature -1", "temperature must be >= 0");
  expect_failure("sample --vqvae " + run + " --priors " + dir.file("top") + " --top-k -2", "top-k must be >= 0");
  // Bad prior architectures.
  for (const auto& [flags, message] : std::vector<std::pair<std::string, std::string>>{
           {"--kernel 4", "kernel must be odd"},
           {"--channels 3", "channels must be an even number"},
           {"--heads 3", "divisible by the 3 heads"},
           {"--blocks 0", "blocks and residual blocks must be positive"},
           {"--dropout 1.5", "dropout must be in [0, 1)"},
           {"--block pixel", "--block: pixel not in {gated-two-stream,pixelsnail}"},
           {"--condition-upsample bilinear", "--condition-upsample: bilinear not in {nearest,transposed}"},
           {"--level middle", "the level must be top, bottom or a level number"}}) {
    expect_failure("train-prior --codes " + run + "/codes --out " + dir.file("bad-prior") + " --size small " + flags,
                   message);
  }
}

TEST(Cli, AFolderOfBrokenFilesIsSkippedWithACount) {
  test::TempDir dir;
  std::filesystem::create_directories(dir.file("data"));
  for (int i = 0; i < 20; ++i) {
    save_png(dir.file("data/ok" + std::to_string(i) + ".png"), torch::randint(0, 255, {3, 20, 24}, torch::kLong).to(torch::kUInt8));
  }
  const auto good = test::read_text(dir.file("data/ok0.png"));
  test::write_bytes(dir.file("data/zero.png"), "");
  test::write_bytes(dir.file("data/truncated.png"), good.substr(0, good.size() - 30));  // header intact, pixels cut
  test::write_bytes(dir.file("data/text.jpg"), "this is not a JPEG");
  // A valid PNG header (with its CRC) claiming 65000 x 65000 pixels, followed by the small image's data.
  std::string ihdr = good.substr(12, 17);  // "IHDR" + 13 bytes of fields
  for (const int at : {4, 8}) ihdr[at] = 0, ihdr[at + 1] = 0, ihdr[at + 2] = '\xFD', ihdr[at + 3] = '\xE8';
  const auto crc = crc32_update(0, ihdr.data(), ihdr.size());
  const char crc_bytes[4] = {static_cast<char>(crc >> 24), static_cast<char>(crc >> 16), static_cast<char>(crc >> 8),
                             static_cast<char>(crc)};
  test::write_bytes(dir.file("data/huge.png"), good.substr(0, 12) + ihdr + std::string(crc_bytes, 4) + good.substr(33));
  test::write_bytes(dir.file("data/notes.txt"), "notes");
  const auto result = run_vqvae2("train-vqvae --data " + dir.file("data") + " --out " + dir.file("run") +
                                 " --steps 2 --val-fraction 0.2" + kTiny);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  // Three fail the header check when the folder is scanned; the truncated PNG has a good header and
  // fails when decoded, and is skipped then.
  EXPECT_NE(result.output.find("3 unreadable files skipped"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("1 non-image files ignored"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("after 2 steps"), std::string::npos) << result.output;
  for (const char* name : {"zero.png", "truncated.png", "text.jpg", "huge.png"}) {
    EXPECT_NE(result.output.find(name), std::string::npos) << name << " not named in a warning";
  }
  EXPECT_NE(result.output.find("65000x65000 pixels, more than"), std::string::npos) << result.output;
}

TEST(Cli, ANonFiniteLossStopsTheRunNamingTheStep) {
  test::TempDir dir;
  const auto result =
      run_vqvae2("train-vqvae --out " + dir.file("r") + " --limit 200 --steps 20 --lr 1e6 --checkpoint-every 1" + kTiny);
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("loss became NaN at step"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("vqvae.ckpt"), std::string::npos) << "names the last good checkpoint";
}

TEST(Cli, PipelineRunsEveryStageAndWritesSamples) {
  test::TempDir dir;
  const auto out = dir.file("main");
  const auto classifier = " --digit-classifier " + test::digit_classifier_path();
  auto result = run_vqvae2("pipeline --out " + out +
                           " --limit 400 --vqvae-steps 20 --prior-steps 6 --samples 4 --quiet" + classifier);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("% confident (4 samples; real held-out digits, 4 at a time: "), std::string::npos)
      << result.output;
  for (const char* file : {"vqvae/vqvae.ckpt", "vqvae/metrics.jsonl", "codes/train.vq2", "prior-level1/prior.ckpt",
                           "prior-level0/prior.ckpt", "samples.png"}) {
    EXPECT_TRUE(std::filesystem::exists(out + "/" + file)) << file;
  }
  EXPECT_EQ(load_image(out + "/samples.png", 8, 1).size(0), 1);
  expect_failure("pipeline --out " + out + " --vqvae-steps 20", "already holds a pipeline run; resume it");
  // Its models sample digits: `sample --score-digits` scores them.
  result = run_vqvae2("sample --vqvae " + out + "/vqvae --priors " + out + "/prior-level0," + out +
                      "/prior-level1 --count 3 --quiet --score-digits --out " + dir.file("s.png") + classifier);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("digit score "), std::string::npos) << result.output;
  EXPECT_NE(result.output.find(" of 10, "), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("(3 samples; real held-out digits, 3 at a time: "), std::string::npos) << result.output;
}

TEST(Cli, TrainAVaeSampleItAndCompareIt) {
  test::TempDir dir;
  const auto vae = dir.file("vae");
  auto result = run_vqvae2("train-vae --out " + vae +
                           " --limit 200 --steps 3 --image-size 16 --hidden 16 --res-blocks 1 --res-channels 8"
                           " --latent-channels 8 --batch-size 16 --quiet");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("latent channels active"), std::string::npos) << result.output;
  result = run_vqvae2("sample --vae " + vae + " --count 3 --out " + dir.file("samples.png") + " --quiet");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(load_image(dir.file("samples.png"), 8, 1).size(0), 1);
  result = run_vqvae2("compare --out " + dir.file("cmp") + " --images 16 --samples 2 --quiet VAE=" + vae);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("| VAE | Gaussian VAE"), std::string::npos) << result.output;
  for (const char* file : {"compare.md", "compare.json", "samples.png"}) {
    EXPECT_TRUE(std::filesystem::exists(dir.file("cmp/") + file)) << file;
  }
  expect_failure("sample --vae " + vae + " --vqvae " + vae, "give --vqvae (with --priors) or --vae, not both");
  expect_failure("sample --vae " + vae + " --score-digits --out " + dir.file("x.png"),
                 "the digit score reads grey 32x32 images like the embedded MNIST digits (the mnist preset), but the "
                 "samples of '" + vae + "' are grey 16x16");
  expect_failure("compare --digit-samples 8 --out " + dir.file("cmp2") + " VAE=" + vae, "are grey 16x16");
  expect_failure("pipeline --lineage --preset small", "--preset does not go with --lineage");
  expect_failure("train-vae --lr -1 --out " + dir.file("vae2"), "learning rate must be positive");
  EXPECT_FALSE(std::filesystem::exists(dir.file("vae2"))) << "a bad flag left a run folder";
}

TEST(Cli, OneProcessCommandsRefuseToRunAsSeveral) {
  // As under `vqvae2 launch --nproc 2`: each copy would train and write the same run folder.
  struct Environment {
    Environment() {
      for (const auto& [name, value] : kVariables) ::setenv(name, value, 1);
    }
    ~Environment() {
      for (const auto& [name, value] : kVariables) ::unsetenv(name);
    }
    const std::vector<std::pair<const char*, const char*>> kVariables = {
        {"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "9"}};
  } several;
  test::TempDir dir;
  expect_failure("train-vae --steps 1 --out " + dir.file("vae"), "train-vae runs in one process");
  expect_failure("pipeline --lineage --vqvae-steps 1 --out " + dir.file("lineage"), "pipeline --lineage runs in one process");
  EXPECT_FALSE(std::filesystem::exists(dir.file("vae"))) << "a refused command wrote its run folder";
}

// ---- audio ----------------------------------------------------------------------------------------

TEST(Cli, AudioStagesEndToEndFromAFolderOfSpokenDigits) {
  if (!test::have_espeak()) GTEST_SKIP() << "espeak-ng is not installed (scripts/setup.sh installs it)";
  test::TempDir dir;
  const auto data = dir.file("speech");
  std::filesystem::create_directories(data);
  ASSERT_TRUE(test::write_speech(data, test::digit_words(), {"en+m3", "en+f2"}));
  const auto run = dir.file("vqvae");
  // Detected as audio from the folder; image flags are refused for it.
  expect_failure("train-vqvae --data " + data + " --out " + dir.file("x") + " --image-size 16", "--image-size is for images");
  auto result = run_vqvae2("train-vqvae --data " + data + " --out " + run +
                           " --clip-length 2048 --hidden 16 --res-blocks 1 --res-channels 8 --codes 32 --code-dims 8 "
                           "--steps 4 --batch-size 8 --quiet");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("STFT distance"), std::string::npos) << result.output;
  EXPECT_TRUE(std::filesystem::exists(run + "/audio-vqvae.ckpt"));
  EXPECT_TRUE(std::filesystem::exists(run + "/audio/reconstruction-00.wav"));

  result = run_vqvae2("extract-codes --checkpoint " + run + " --quiet");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("held-out clips"), std::string::npos) << result.output;
  const std::string prior_flags = " --size small --channels 16 --gate-channels 16 --skip-channels 16 "
                                  "--layers-per-cycle 3 --condition-channels 8 --steps 3 --batch-size 8 --quiet --codes " +
                                  run + "/codes";
  expect_failure("train-prior --level top --out " + dir.file("t") + prior_flags + " --heads 2", "--heads is for the image priors");
  result = run_vqvae2("train-prior --level top --out " + dir.file("top") + prior_flags);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("bits per audio sample"), std::string::npos) << result.output;
  result = run_vqvae2("train-prior --level bottom --out " + dir.file("bottom") + prior_flags);
  ASSERT_EQ(result.exit_code, 0) << result.output;

  result = run_vqvae2("sample --vqvae " + run + " --priors " + dir.file("bottom") + "," + dir.file("top") +
                      " --count 3 --length 4096 --quiet --out " + dir.file("samples"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("s per second of audio (cached sampler)"), std::string::npos) << result.output;
  for (const char* name : {"sample-00.wav", "sample-02.wav"}) {
    const auto wav = read_audio(dir.file("samples/") + name);
    EXPECT_EQ(wav.samples.size(1), 4096) << name;
    EXPECT_EQ(wav.sample_rate, 16000) << name;
  }
  EXPECT_TRUE(std::filesystem::exists(dir.file("samples/spectrograms.png")));
  expect_failure("sample --vqvae " + run + " --priors " + dir.file("top"), "no WaveNet given for level 0");
  expect_failure("sample --vqvae " + run + " --priors " + dir.file("top") + "," + dir.file("bottom") + " --length 100",
                 "multiple");
  expect_failure("sample --vqvae " + run + " --priors " + dir.file("top") + "," + dir.file("bottom") + " --candidates 4",
                 "--candidates is for images, not audio");
  expect_failure("sample --vqvae " + run + " --priors " + dir.file("top") + "," + dir.file("bottom") + " --guidance 1",
                 "--guidance is for images, not audio");
}

}  // namespace
}  // namespace vqvae2

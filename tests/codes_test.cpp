#include "vqvae2/stages/codes.h"

#include "test_util.h"
#include "vqvae2/core/checkpoint.h"
#include "vqvae2/core/device.h"
#include "vqvae2/data/image.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace vqvae2 {
namespace {

TEST(Codes, LevelsFollowTheModel) {
  const auto levels = code_levels(test::tiny_config().model);
  ASSERT_EQ(levels.size(), 2u);
  EXPECT_EQ(levels[0].height, 8);
  EXPECT_EQ(levels[1].width, 4);
  EXPECT_EQ(levels[1].codes, 32);
}

TEST(Codes, ExtractWritesBothSplitsWithTheirHeaders) {
  test::TempDir dir;
  test::untrained_vqvae(dir.file("vqvae"));
  const auto result = extract_codes({dir.file("vqvae"), "", 64}, test::quiet());
  EXPECT_EQ(result.train_path, dir.file("vqvae/codes/train.vq2"));  // default: beside the checkpoint
  const auto train = read_code_store(result.train_path);
  const auto validation = read_code_store(result.validation_path);
  EXPECT_EQ(train.size(), result.train_count);
  EXPECT_EQ(result.train_count + result.validation_count, test::tiny_config().data.limit);
  EXPECT_EQ(validation.meta["split"], "val");
  EXPECT_EQ(validation.meta["image_size"], 16);
  EXPECT_EQ(validation.meta["channels"], 1);
  EXPECT_EQ(validation.meta["vqvae_checkpoint"], dir.file("vqvae/vqvae.ckpt"));

  // An extraction killed mid-write (SIGKILL) left a temporary file: the next one sweeps it.
  const auto left = dir.file("vqvae/codes/train.vq2.tmp.999999999.0");
  test::write_bytes(left, "torn");
  extract_codes({dir.file("vqvae"), "", 64}, test::quiet());
  EXPECT_FALSE(std::filesystem::exists(left));
}

TEST(Codes, AugmentAddsJitteredCopiesOfTheTrainingImagesOnly) {
  test::TempDir dir;
  test::untrained_vqvae(dir.file("vqvae"), /*codebooks_from_data=*/true);  // different images, different codes
  const auto plain = extract_codes({dir.file("vqvae"), dir.file("plain"), 64}, test::quiet());
  ExtractConfig config{dir.file("vqvae"), dir.file("augmented"), 64};
  config.augment = 2;
  config.jitter = {20, 0.2, 2};
  const auto augmented = extract_codes(config, test::quiet());
  EXPECT_EQ(augmented.train_count, 3 * plain.train_count);
  EXPECT_EQ(augmented.validation_count, plain.validation_count);

  const auto a = read_code_store(augmented.train_path), p = read_code_store(plain.train_path);
  const auto n = plain.train_count;
  EXPECT_EQ(a.meta["augment"]["copies"], 2);
  EXPECT_FALSE(p.meta.contains("augment"));
  EXPECT_FALSE(read_code_store(augmented.validation_path).meta.contains("augment"));
  for (size_t level = 0; level < a.codes.size(); ++level) {
    // The images' own codes first, then each copy's, which differ from them and from each other.
    EXPECT_TRUE(torch::equal(a.codes[level].slice(0, 0, n), p.codes[level])) << level;
    EXPECT_FALSE(torch::equal(a.codes[level].slice(0, n, 2 * n), p.codes[level])) << level;
    EXPECT_FALSE(torch::equal(a.codes[level].slice(0, n, 2 * n), a.codes[level].slice(0, 2 * n, 3 * n))) << level;
    EXPECT_TRUE(torch::equal(read_code_store(augmented.validation_path).codes[level],
                             read_code_store(plain.validation_path).codes[level]));
  }
  // The same seed, the same store.
  config.out = dir.file("again");
  const auto again = read_code_store(extract_codes(config, test::quiet()).train_path);
  for (size_t level = 0; level < a.codes.size(); ++level) EXPECT_TRUE(torch::equal(again.codes[level], a.codes[level]));

  config.augment = -1;
  test::expect_error([&] { extract_codes(config, test::quiet()); }, "augmented copies");
  config.augment = 1;
  config.checkpoint = dir.file("no-such-audio-run");
  test::expect_error([&] { extract_audio_codes(config, test::quiet()); }, "not augmented");
}

TEST(Codes, EncodeThenDecodeKeepsSourceNamesAndReproducesReconstructions) {
  test::TempDir dir;
  test::untrained_vqvae(dir.file("vqvae"));
  std::filesystem::create_directories(dir.file("images/sub"));
  for (const auto* name : {"a.png", "sub/b.png", "c.png"}) {
    save_png(dir.file(std::string("images/") + name), torch::randint(0, 255, {1, 20, 20}, torch::kLong).to(torch::kUInt8));
  }
  save_png(dir.file("images/a.jpg"), torch::zeros({1, 16, 16}, torch::kUInt8));  // read by content, not extension
  EXPECT_EQ(encode({dir.file("vqvae"), dir.file("images"), dir.file("codes.vq2"), 2}, test::quiet()), 4);
  const auto store = read_code_store(dir.file("codes.vq2"));
  EXPECT_EQ(store.meta["images"], (nlohmann::json{"a.jpg", "a.png", "c.png", "sub/b.png"}));

  EXPECT_EQ(decode({dir.file("vqvae"), dir.file("codes.vq2"), dir.file("out"), 0, 3}, test::quiet()), 4);
  for (const auto* name : {"a.png", "c.png", "sub/b.png", "grid.png"}) {
    EXPECT_TRUE(std::filesystem::exists(dir.file(std::string("out/") + name))) << name;
  }
  // a.jpg took the name a.png first, so image 1 (a.png) falls back to its number.
  EXPECT_TRUE(std::filesystem::exists(dir.file("out/000001.png")));

  // The decoded image is the VQ-VAE's own reconstruction of the source.
  auto vqvae = load<VQVAEKind>(dir.file("vqvae"), torch::kCPU);
  const auto source = load_image(dir.file("images/c.png"), 16, 1);
  torch::NoGradGuard no_grad;
  const auto reconstruction = to_pixels(vqvae.model->forward(to_model_range(source.unsqueeze(0))).reconstruction)[0];
  EXPECT_TRUE(torch::equal(load_image(dir.file("out/c.png"), 16, 1), reconstruction));
}

TEST(Codes, DecodeNamesUnsafeOrMissingNamesByNumber) {
  test::TempDir dir;
  test::untrained_vqvae(dir.file("vqvae"));
  CodeStoreWriter writer(dir.file("codes.vq2"), code_levels(test::tiny_config().model),
                         {{"images", {"../escape.png", "ok.png"}}});
  writer.append({torch::zeros({2, 8, 8}, torch::kLong), torch::zeros({2, 4, 4}, torch::kLong)});
  writer.close();
  EXPECT_EQ(decode({dir.file("vqvae"), dir.file("codes.vq2"), dir.file("out"), 0, 8}, test::quiet()), 2);
  EXPECT_TRUE(std::filesystem::exists(dir.file("out/000000.png")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("out/ok.png")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("escape.png")));
}

TEST(Codes, BadArgumentsAreClearErrors) {
  test::TempDir dir;
  test::untrained_vqvae(dir.file("vqvae"));
  test::expect_error([&] { decode({dir.file("vqvae"), dir.file("none.vq2"), dir.file("out"), -1, 8}, test::quiet()); },
                     "the image limit must be >= 0");
  test::expect_error([&] { decode({dir.file("vqvae"), dir.file("none.vq2"), dir.file("out"), 0, 8}, test::quiet()); },
                     "none.vq2");
  test::expect_error([&] { extract_codes({dir.file("vqvae"), dir.file("codes"), 0}, test::quiet()); },
                     "batch size must be positive, got 0");
}

}  // namespace
}  // namespace vqvae2

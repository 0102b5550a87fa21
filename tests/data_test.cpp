#include "vqvae2/data/data.h"

#include "test_util.h"
#include "vqvae2/core/error.h"
#include "vqvae2/data/image.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <sstream>

namespace vqvae2 {
namespace {

// Folder tests make 8×8 RGB images.
const ImageFormat kRGB8{8, 3};

DataOptions folder_options(const std::string& folder) {
  DataOptions o;
  o.folder = folder;
  return o;
}

void write_images(const test::TempDir& dir, int count) {
  for (int i = 0; i < count; ++i) {
    save_png(dir.file("img" + std::to_string(i) + ".png"), torch::full({3, 10 + i, 12}, i, torch::kUInt8));
  }
}

TEST(Data, EmbeddedMnistHoldsTenThousandRealDigits) {
  const auto images = embedded_mnist_images();
  const auto labels = embedded_mnist_labels();
  ASSERT_EQ(images.sizes(), (std::vector<int64_t>{10000, 1, 28, 28}));
  ASSERT_EQ(labels.size(0), 10000);
  EXPECT_EQ(labels.min().item<int64_t>(), 0);
  EXPECT_EQ(labels.max().item<int64_t>(), 9);
  // Real handwriting: dark background (corners blank), bright strokes, and the images differ.
  EXPECT_EQ(images.select(2, 0).max().item<int>(), 0);
  EXPECT_GT(images.to(torch::kFloat).mean().item<double>(), 20);
  EXPECT_LT(images.to(torch::kFloat).mean().item<double>(), 60);
  EXPECT_FALSE(torch::equal(images[0], images[1]));
}

TEST(Data, EmbeddedDigitsArePaddedTo32AndConverted) {
  const auto dataset = ImageDataset::open(DataOptions(), {32, 3});
  EXPECT_EQ(dataset->size(), 10000);
  const auto image = dataset->get(7);
  ASSERT_EQ(image.sizes(), (std::vector<int64_t>{3, 32, 32}));
  EXPECT_TRUE(torch::equal(image[0], image[2]));
  EXPECT_TRUE(torch::equal(image[0].slice(0, 2, 30).slice(1, 2, 30), embedded_mnist_images()[7][0]));
}

TEST(Data, ReadsAFolderOfMixedImagesAndSkipsBrokenOnes) {
  test::TempDir dir;
  write_images(dir, 3);
  std::filesystem::create_directories(dir.file("sub"));
  save_png(dir.file("sub/grey.png"), torch::full({1, 9, 9}, 50, torch::kUInt8));
  test::write_bytes(dir.file("broken.png"), "not an image at all");
  test::write_bytes(dir.file("empty.jpg"), "");
  test::write_bytes(dir.file("notes.txt"), "ignored");
  test::write_bytes(dir.file("LICENSES"), "the set's licences: not an image, and no reason for a warning");
  test::write_bytes(dir.file(".vqvae2-data"), "a marker");
  std::filesystem::create_directories(dir.file(".git"));
  save_png(dir.file(".git/hidden.png"), torch::zeros({3, 4, 4}, torch::kUInt8));
  std::ostringstream warnings;
  const auto dataset = ImageDataset::open(folder_options(dir.path()), kRGB8, &warnings);
  EXPECT_EQ(dataset->size(), 4);
  EXPECT_EQ(dataset->skipped().size(), 2u);
  EXPECT_EQ(dataset->ignored_non_images(), 1);
  EXPECT_NE(warnings.str().find("broken.png"), std::string::npos);
  EXPECT_NE(dataset->describe().find("2 unreadable files skipped"), std::string::npos);
  for (int64_t i = 0; i < dataset->size(); ++i) EXPECT_EQ(dataset->get(i).sizes(), (std::vector<int64_t>{3, 8, 8}));
}

TEST(Data, FailModeStopsAtTheFirstBrokenFile) {
  test::TempDir dir;
  write_images(dir, 2);
  test::write_bytes(dir.file("broken.png"), "\x89PNG garbage");
  auto o = folder_options(dir.path());
  o.skip_bad_images = false;
  try {
    ImageDataset::open(o, kRGB8);
    FAIL() << "a broken file was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("broken.png"), std::string::npos) << e.what();
  }
}

TEST(Data, MissingEmptyAndNonFolderPathsAreClearErrors) {
  test::TempDir dir;
  try {
    ImageDataset::open(folder_options(dir.file("nope")), kRGB8);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos);
  }
  try {
    ImageDataset::open(folder_options(dir.path()), kRGB8);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no readable images"), std::string::npos);
  }
  test::write_bytes(dir.file("file.png"), "x");
  EXPECT_THROW(ImageDataset::open(folder_options(dir.file("file.png")), kRGB8), Error);
}

TEST(Data, SplitIsDeterministicDisjointAndStableUnderAdditions) {
  test::TempDir dir;
  write_images(dir, 40);
  auto o = folder_options(dir.path());
  o.validation_fraction = 0.25;
  const auto original = ImageDataset::open(o, kRGB8);
  const auto [train, validation] = original->split();
  EXPECT_EQ(train.size() + validation.size(), 40u);
  EXPECT_GT(validation.size(), 3u);
  EXPECT_LT(validation.size(), 20u);
  const std::set<int64_t> train_set(train.begin(), train.end());
  for (const auto v : validation) EXPECT_EQ(train_set.count(v), 0u);
  EXPECT_EQ(ImageDataset::open(o, kRGB8)->split().second, validation);
  // A new file that sorts first shifts every index, but moves no old image across the split.
  save_png(dir.file("aaa.png"), torch::zeros({3, 4, 4}, torch::kUInt8));
  const auto grown = ImageDataset::open(o, kRGB8);
  std::set<std::string> grown_validation;
  for (const auto v : grown->split().second) grown_validation.insert(grown->source(v).name);
  for (const auto v : validation) EXPECT_EQ(grown_validation.count(original->source(v).name), 1u);
}

TEST(Data, LoaderCoversAnEpochInARepeatableShuffledOrder) {
  DataOptions o;
  o.limit = 100;
  const auto dataset = ImageDataset::open(o, {16, 1});
  std::vector<int64_t> indices(100);
  std::iota(indices.begin(), indices.end(), 0);
  BatchLoader loader(dataset, indices, {10, true, true, 7, 2});
  EXPECT_EQ(loader.batches_per_epoch(), 10);
  loader.start(3);
  std::vector<int64_t> seen;
  while (auto batch = loader.next()) {
    EXPECT_EQ(batch->images.sizes(), (std::vector<int64_t>{10, 1, 16, 16}));
    EXPECT_EQ(batch->images.scalar_type(), torch::kUInt8);
    seen.insert(seen.end(), batch->indices.begin(), batch->indices.end());
    EXPECT_TRUE(torch::equal(batch->images[0], dataset->get(batch->indices[0])));
  }
  EXPECT_EQ(seen, loader.epoch_order(3));
  std::vector<int64_t> sorted = seen;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, indices);
  EXPECT_NE(seen, indices);                      // shuffled
  EXPECT_NE(loader.epoch_order(4), seen);        // differently each epoch
  // Starting mid-epoch yields exactly the rest of that epoch.
  loader.start(3, 6);
  std::vector<int64_t> rest;
  while (auto batch = loader.next()) rest.insert(rest.end(), batch->indices.begin(), batch->indices.end());
  EXPECT_EQ(rest, std::vector<int64_t>(seen.begin() + 60, seen.end()));
}

TEST(Data, LoaderKeepsTheLastPartialBatchWhenAsked) {
  DataOptions o;
  o.limit = 25;
  const auto dataset = ImageDataset::open(o, {8, 1});
  std::vector<int64_t> indices(25);
  std::iota(indices.begin(), indices.end(), 0);
  BatchLoader loader(dataset, indices, {10, false, false, 0, 2});
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  loader.start(0);
  std::vector<int64_t> sizes;
  while (auto batch = loader.next()) sizes.push_back(batch->images.size(0));
  EXPECT_EQ(sizes, (std::vector<int64_t>{10, 10, 5}));
}

TEST(Data, AFileThatBreaksAfterScanningIsSubstitutedOrRefused) {
  test::TempDir dir;
  write_images(dir, 4);
  std::ostringstream warnings;
  const auto dataset = ImageDataset::open(folder_options(dir.path()), kRGB8, &warnings);
  // Damage a file after the scan accepted its header.
  test::write_bytes(dir.file("img1.png"), test::read_text(dir.file("img1.png")).substr(0, 60));
  BatchLoader loader(dataset, {0, 1, 2, 3}, {4, false, true, 0, 1});
  loader.start(0);
  const auto batch = loader.next();
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->images.size(0), 4);
  EXPECT_TRUE(torch::equal(batch->images[1], dataset->get(2)));  // the next readable image stands in
  EXPECT_NE(warnings.str().find("img1.png"), std::string::npos);
  dataset->get(1);
  const auto text = warnings.str();
  EXPECT_EQ(text.find("img1.png"), text.rfind("img1.png")) << "warned more than once";

  test::TempDir dir2;
  write_images(dir2, 2);
  auto strict = folder_options(dir2.path());
  strict.skip_bad_images = false;
  const auto strict_dataset = ImageDataset::open(strict, kRGB8);
  test::write_bytes(dir2.file("img0.png"), "garbage");
  EXPECT_THROW(strict_dataset->get(0), Error);
  BatchLoader strict_loader(strict_dataset, {0, 1}, {2, false, true, 0, 1});
  strict_loader.start(0);
  EXPECT_THROW(strict_loader.next(), Error);
}

TEST(Data, RefusesBatchesLargerThanTheData) {
  DataOptions o;
  o.limit = 5;
  const auto dataset = ImageDataset::open(o, {8, 1});
  EXPECT_THROW(BatchLoader(dataset, {0, 1, 2, 3, 4}, {10, true, true, 0, 1}), Error);
}

}  // namespace
}  // namespace vqvae2

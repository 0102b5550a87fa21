#include "vqvae2/checkpoint.h"

#include "test_util.h"
#include "vqvae2/error.h"
#include "vqvae2/vqvae.h"

#include <gtest/gtest.h>

namespace vqvae2 {
namespace {

VQVAEOptions small_model(int64_t hidden = 16) {
  VQVAEOptions o;
  o.image_size = 16;
  o.hidden = hidden;
  o.res_blocks = 1;
  o.res_channels = 8;
  o.strides = {2, 2};
  o.codes = {16};
  o.code_dims = {4};
  return o;
}

std::string write_model(const test::TempDir& dir, HierarchicalVQVAE& model, const std::string& name = "m.ckpt") {
  torch::serialize::OutputArchive archive;
  save_module(*model, archive, "model");
  const auto path = dir.file(name);
  write_checkpoint(path, {{"kind", "vqvae"}, {"config", nlohmann::json(model->options())}, {"state", {{"step", 7}}}},
                   archive);
  return path;
}

std::string expect_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no vqvae2::Error was thrown";
  return "";
}

TEST(Checkpoint, RoundTripRestoresEveryTensorAndTheMetadata) {
  test::TempDir dir;
  torch::manual_seed(1);
  HierarchicalVQVAE a(small_model());
  a->train();
  a->forward(torch::rand({4, 3, 16, 16}));  // move the EMA buffers off their initial values
  const auto path = write_model(dir, a);
  torch::manual_seed(2);
  HierarchicalVQVAE b(small_model());
  const auto contents = read_checkpoint(path, "vqvae");
  EXPECT_EQ(contents.meta["state"]["step"], 7);
  EXPECT_EQ(contents.meta["config"].get<VQVAEOptions>().hidden, 16);
  auto archive = open_archive(contents, path);
  load_module(*b, archive, "model", path);
  const auto pa = a->named_parameters(), pb = b->named_parameters();
  for (const auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
  const auto ba = a->named_buffers(), bb = b->named_buffers();
  ASSERT_GT(ba.size(), 0u);
  for (const auto& item : ba) EXPECT_TRUE(torch::equal(item.value(), bb[item.key()])) << item.key();
}

TEST(Checkpoint, TruncatedFilesAreRefusedAtEveryLength) {
  test::TempDir dir;
  HierarchicalVQVAE model(small_model());
  const auto bytes = test::read_text(write_model(dir, model));
  for (const size_t length : {size_t{0}, size_t{5}, size_t{11}, size_t{30}, bytes.size() / 2, bytes.size() - 1}) {
    test::write_bytes(dir.file("cut.ckpt"), bytes.substr(0, length));
    const auto message = expect_error([&] { read_checkpoint(dir.file("cut.ckpt"), "vqvae"); });
    EXPECT_TRUE(message.find("truncated") != std::string::npos || message.find("not a vqvae2 checkpoint") != std::string::npos)
        << length << ": " << message;
  }
}

TEST(Checkpoint, ForeignAndCorruptedFilesAreRefused) {
  test::TempDir dir;
  test::write_bytes(dir.file("foreign.ckpt"), "PK\x03\x04 this is a zip file, not ours");
  EXPECT_NE(expect_error([&] { read_checkpoint(dir.file("foreign.ckpt"), ""); }).find("not a vqvae2 checkpoint"),
            std::string::npos);
  HierarchicalVQVAE model(small_model());
  auto bytes = test::read_text(write_model(dir, model));
  bytes[bytes.size() / 2] ^= 0x40;
  test::write_bytes(dir.file("flipped.ckpt"), bytes);
  EXPECT_NE(expect_error([&] { read_checkpoint(dir.file("flipped.ckpt"), ""); }).find("corrupted"), std::string::npos);
  EXPECT_NE(expect_error([&] { read_checkpoint(dir.file("missing.ckpt"), ""); }).find("cannot open"), std::string::npos);
}

TEST(Checkpoint, AnotherKindIsRefused) {
  test::TempDir dir;
  HierarchicalVQVAE model(small_model());
  const auto path = write_model(dir, model);
  EXPECT_NE(expect_error([&] { read_checkpoint(path, "prior"); }).find("holds a vqvae checkpoint"), std::string::npos);
}

TEST(Checkpoint, AModelOfAnotherShapeIsAClearError) {
  test::TempDir dir;
  HierarchicalVQVAE narrow(small_model(16));
  const auto path = write_model(dir, narrow);
  HierarchicalVQVAE wide(small_model(32));
  const auto contents = read_checkpoint(path, "vqvae");
  auto archive = open_archive(contents, path);
  const auto message = expect_error([&] { load_module(*wide, archive, "model", path); });
  EXPECT_NE(message.find("in the file but"), std::string::npos) << message;
  const auto config_message = expect_error(
      [&] { check_same_config(contents.meta["config"], nlohmann::json(wide->options()), path); });
  EXPECT_NE(config_message.find("hidden: checkpoint 16, requested 32"), std::string::npos) << config_message;
}

TEST(Checkpoint, WritesAtomicallyLeavingNoTemporaryFiles) {
  test::TempDir dir;
  HierarchicalVQVAE model(small_model());
  write_model(dir, model);
  write_model(dir, model);  // replacing an existing file
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(entry.path().filename(), "m.ckpt");
  }
  EXPECT_EQ(files, 1);
}

}  // namespace
}  // namespace vqvae2

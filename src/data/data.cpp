#include "vqvae2/data/data.h"

#include "vqvae2/core/error.h"
#include "vqvae2/data/image.h"

#include <algorithm>
#include <filesystem>
#include <random>

namespace vqvae2 {

namespace fs = std::filesystem;

void DataOptions::validate() const {
  VQVAE2_CHECK(validation_fraction >= 0 && validation_fraction < 1,
               "validation fraction must be in [0, 1), got {}", validation_fraction);
  VQVAE2_CHECK(limit >= 0, "image limit must be >= 0 (0 = all), got {}", limit);
  VQVAE2_CHECK(cache_mb >= 0, "cache size must be >= 0 MiB, got {}", cache_mb);
}

const std::vector<std::string>& image_extensions() {
  static const std::vector<std::string> extensions = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tga"};
  return extensions;
}

namespace {

bool has_image_extension(const fs::path& path) {
  const auto& extensions = image_extensions();
  auto extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(), [](unsigned char c) { return std::tolower(c); });
  return std::find(extensions.begin(), extensions.end(), extension) != extensions.end();
}

// A data set's own papers, not its images: hidden files and folders (a marker such as .vqvae2-data,
// .git/) and licence or read-me notes. Left out without being counted as ignored non-images.
bool is_housekeeping(const fs::path& relative) {
  for (const auto& part : relative) {
    if (!part.empty() && part.string().front() == '.' && part != "." && part != "..") return true;
  }
  auto stem = relative.filename().string();
  std::transform(stem.begin(), stem.end(), stem.begin(), [](unsigned char c) { return std::toupper(c); });
  return stem.rfind("LICENSE", 0) == 0 || stem.rfind("LICENCE", 0) == 0 || stem.rfind("README", 0) == 0;
}

}  // namespace

uint64_t stable_hash(const std::string& text, uint64_t seed) {
  uint64_t hash = 0xcbf29ce484222325ull ^ (seed * 0x100000001b3ull);
  for (const unsigned char c : text) hash = (hash ^ c) * 0x100000001b3ull;
  return hash;
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> split_by_name(const std::vector<std::string>& names,
                                                                    double validation_fraction, uint64_t seed) {
  std::vector<int64_t> train, validation;
  const auto threshold = static_cast<uint64_t>(validation_fraction * 1'000'000);
  for (size_t i = 0; i < names.size(); ++i) {
    (stable_hash(names[i], seed) % 1'000'000 < threshold ? validation : train).push_back(static_cast<int64_t>(i));
  }
  if (validation_fraction > 0 && validation.empty() && train.size() > 1) {
    validation.push_back(train.back());
    train.pop_back();
  }
  return {train, validation};
}

std::shared_ptr<ImageDataset> ImageDataset::open(const DataOptions& options, const ImageFormat& format,
                                                 std::ostream* warnings) {
  options.validate();
  format.validate();
  std::shared_ptr<ImageDataset> dataset(new ImageDataset(options, format));
  dataset->warnings_ = warnings;
  if (options.folder.empty()) {
    dataset->embedded_ = embedded_mnist_images();
    const auto n = dataset->embedded_.size(0);
    for (int64_t i = 0; i < n; ++i) dataset->sources_.push_back({fmt::format("mnist/{:05d}", i), "", i});
  } else {
    const fs::path root(options.folder);
    std::error_code error;
    VQVAE2_CHECK(fs::exists(root, error), "data folder '{}' does not exist", options.folder);
    VQVAE2_CHECK(fs::is_directory(root, error), "'{}' is not a folder; the data must be a folder of images",
                 options.folder);
    std::vector<fs::path> files;
    for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, error);
         !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
      if (it->is_regular_file(error)) files.push_back(it->path());
    }
    VQVAE2_CHECK(!error, "cannot list '{}': {}", options.folder, error.message());
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      const auto relative = fs::relative(file, root, error);
      const auto name = relative.string();
      if (is_housekeeping(relative)) continue;
      if (!has_image_extension(file)) {
        ++dataset->ignored_;
        continue;
      }
      try {
        probe_image(file.string());
        dataset->sources_.push_back({name, file.string(), -1});
      } catch (const Error& e) {
        VQVAE2_CHECK(options.skip_bad_images, "{} (skipping unreadable images leaves such files out)", e.what());
        dataset->skipped_.push_back(name);
        if (warnings) *warnings << "warning: skipping " << e.what() << "\n";
      }
    }
    if (warnings && (!dataset->skipped_.empty() || dataset->ignored_ > 0)) {
      *warnings << fmt::format("warning: '{}': {} unreadable files skipped, {} non-image files ignored\n",
                               options.folder, dataset->skipped_.size(), dataset->ignored_);
    }
    VQVAE2_CHECK(!dataset->sources_.empty(),
                 "no readable images in '{}' ({} files skipped as unreadable, {} without an image extension); "
                 "vqvae2 reads PNG, JPEG, BMP, GIF and TGA files",
                 options.folder, dataset->skipped_.size(), dataset->ignored_);
  }
  if (options.limit > 0 && dataset->size() > options.limit) dataset->sources_.resize(options.limit);
  dataset->cache_.resize(dataset->sources_.size());
  dataset->broken_.assign(dataset->sources_.size(), false);
  return dataset;
}

std::string ImageDataset::describe() const {
  std::string text = options_.folder.empty() ? fmt::format("{} embedded MNIST digits", size())
                                             : fmt::format("{} images from '{}'", size(), options_.folder);
  if (!skipped_.empty()) text += fmt::format(", {} unreadable files skipped", skipped_.size());
  if (ignored_ > 0) text += fmt::format(", {} non-image files ignored", ignored_);
  return text;
}

torch::Tensor ImageDataset::decode(int64_t index) const {
  const auto& source = sources_.at(index);
  if (source.embedded_index < 0) return load_image(source.path, format_.size, format_.channels);
  // MNIST digits sit in a 20×20 box centred in 28×28: pad to 32×32 (the classic way to make them
  // divisible by 4 and 8), then resize only if another size was asked for.
  auto digit = torch::constant_pad_nd(embedded_[source.embedded_index], {2, 2, 2, 2}, 0);
  digit = resize_square(digit, format_.size);
  return format_.channels == 3 ? digit.expand({3, -1, -1}).contiguous() : digit;
}

torch::Tensor ImageDataset::cached_decode(int64_t index) const {
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_[index].defined()) return cache_[index];
  }
  auto image = decode(index);
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (!cache_[index].defined() && cache_bytes_ + image.numel() <= options_.cache_mb * (int64_t{1} << 20)) {
    cache_[index] = image;
    cache_bytes_ += image.numel();
  }
  return image;
}

torch::Tensor ImageDataset::get(int64_t index) const {
  VQVAE2_CHECK(index >= 0 && index < size(), "image index {} out of range [0, {})", index, size());
  // Skip mode: a file that fails to decode is reported once and stands in for by the next
  // readable one, so a batch keeps its size and a run keeps going.
  for (int64_t step = 0; step < size(); ++step) {
    const auto candidate = (index + step) % size();
    {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      if (broken_[candidate]) continue;
    }
    try {
      return cached_decode(candidate);
    } catch (const Error& e) {
      if (!options_.skip_bad_images) throw;
      std::lock_guard<std::mutex> lock(cache_mutex_);
      if (!broken_[candidate] && warnings_) *warnings_ << "warning: skipping " << e.what() << "\n";
      broken_[candidate] = true;
    }
  }
  fail("none of the {} images in '{}' can be decoded", size(), options_.folder);
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> ImageDataset::split() const {
  std::vector<std::string> names;
  for (const auto& source : sources_) names.push_back(source.name);
  auto [train, validation] = split_by_name(names, options_.validation_fraction, options_.split_seed);
  VQVAE2_CHECK(!train.empty(), "no images left for training after holding out {:.0f}% for validation",
               100 * options_.validation_fraction);
  return {train, validation};
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> ImageDataset::training_split(std::ostream* log) const {
  auto [train, validation] = split();
  if (validation.empty()) {
    if (log) *log << "warning: no validation images (validation fraction 0): evaluating on the training images\n";
    validation = train;
  }
  return {std::move(train), std::move(validation)};
}

torch::Tensor ImageDataset::spread(const std::vector<int64_t>& indices, int64_t count) const {
  count = std::min<int64_t>(count, static_cast<int64_t>(indices.size()));
  if (count <= 0) return {};
  std::vector<torch::Tensor> images;
  for (int64_t i = 0; i < count; ++i) images.push_back(get(indices[i * static_cast<int64_t>(indices.size()) / count]));
  return torch::stack(images);
}

// ---- BatchLoader ----------------------------------------------------------------------------------

BatchLoader::BatchLoader(std::shared_ptr<const Dataset> dataset, std::vector<int64_t> indices,
                         LoaderOptions options)
    : dataset_(std::move(dataset)), indices_(std::move(indices)), options_(options) {
  VQVAE2_CHECK(options_.batch_size >= 1, "batch size must be positive, got {}", options_.batch_size);
  VQVAE2_CHECK(!options_.drop_last || static_cast<int64_t>(indices_.size()) >= options_.batch_size,
               "batch size {} is larger than the {} items (images or clips) available; lower --batch-size", options_.batch_size,
               indices_.size());
  VQVAE2_CHECK(options_.shards >= 1 && options_.shard >= 0 && options_.shard < options_.shards,
               "shard {} of {} does not exist", options_.shard, options_.shards);
  VQVAE2_CHECK(!options_.drop_last || options_.batch_size % options_.shards == 0,
               "the batch size {} does not split evenly over {} processes; give a multiple of {}", options_.batch_size,
               options_.shards, options_.shards);
  options_.prefetch = std::max<int64_t>(1, options_.prefetch);
}

BatchLoader::~BatchLoader() { stop(); }

int64_t BatchLoader::batches_per_epoch() const {
  const auto n = static_cast<int64_t>(indices_.size());
  return options_.drop_last ? n / options_.batch_size : (n + options_.batch_size - 1) / options_.batch_size;
}

std::vector<int64_t> shuffled_order(std::vector<int64_t> order, uint64_t seed, int64_t epoch) {
  std::mt19937_64 random(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch));
  for (size_t i = order.size(); i > 1; --i) {
    const auto j = static_cast<size_t>(random() % i);
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

std::vector<int64_t> BatchLoader::epoch_order(int64_t epoch) const {
  return options_.shuffle ? shuffled_order(indices_, options_.seed, epoch) : indices_;
}

void BatchLoader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (worker_.joinable()) worker_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  stopping_ = false;
  ready_.clear();
  error_ = nullptr;
  finished_ = true;
}

void BatchLoader::start(int64_t epoch, int64_t first_batch) {
  stop();
  std::lock_guard<std::mutex> lock(mutex_);
  finished_ = false;
  worker_ = std::thread(&BatchLoader::produce, this, epoch_order(epoch), first_batch, ++generation_);
}

void BatchLoader::produce(std::vector<int64_t> order, int64_t first_batch, uint64_t generation) {
  try {
    const auto total = batches_per_epoch();
    const auto n = static_cast<int64_t>(order.size());
    for (int64_t b = first_batch; b < total; ++b) {
      Batch batch;
      const auto batch_begin = b * options_.batch_size;
      const auto length = std::min(n, batch_begin + options_.batch_size) - batch_begin;
      const auto begin = batch_begin + options_.shard * length / options_.shards;
      const auto end = batch_begin + (options_.shard + 1) * length / options_.shards;
      if (begin == end) continue;
      std::vector<torch::Tensor> images;
      for (int64_t i = begin; i < end; ++i) {
        batch.indices.push_back(order[i]);
        images.push_back(dataset_->get(order[i]));
      }
      batch.images = torch::stack(images);
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || static_cast<int64_t>(ready_.size()) < options_.prefetch; });
      if (stopping_ || generation != generation_) return;
      ready_.push_back(std::move(batch));
      changed_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::current_exception();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  finished_ = true;
  changed_.notify_all();
}

std::optional<Batch> BatchLoader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return !ready_.empty() || finished_; });
  if (!ready_.empty()) {
    Batch batch = std::move(ready_.front());
    ready_.pop_front();
    changed_.notify_all();
    return batch;
  }
  if (error_) std::rethrow_exception(error_);
  return std::nullopt;
}

}  // namespace vqvae2

// The code store: the discrete latents of a data set, as the VQ-VAE encoded them, for training
// the priors and for `vqvae2 decode`. Compact (2 bytes a code) and readable without LibTorch;
// docs/FORMATS.md has the layout:
//   "VQ2CODES"             8-byte magic
//   u32 version            kCodeStoreVersion
//   u64 n, n bytes         JSON: {"levels": [{"height", "width", "codes"}, ...] bottom first, ...}
//   u64 count              number of images
//   count records          per image, per level (bottom first): height·width u16, row-major
//   u32 crc32              of every byte before it
// All integers little-endian.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <string>
#include <vector>

namespace vqvae2 {

constexpr uint32_t kCodeStoreVersion = 1;

struct CodeLevel {
  int64_t height = 0, width = 0, codes = 0;  // map size and codebook size K
};

struct CodeStore {
  std::vector<CodeLevel> levels;  // bottom first
  nlohmann::json meta;            // the header JSON (levels, and whatever the writer added)
  std::vector<torch::Tensor> codes;  // per level: int64 [count, height, width]
  int64_t size() const { return codes.empty() ? 0 : codes[0].size(0); }
};

// Streams records to a temporary file; close() makes it appear atomically at `path`.
class CodeStoreWriter {
 public:
  CodeStoreWriter(std::string path, std::vector<CodeLevel> levels, nlohmann::json meta = nlohmann::json::object());
  ~CodeStoreWriter();
  CodeStoreWriter(const CodeStoreWriter&) = delete;
  CodeStoreWriter& operator=(const CodeStoreWriter&) = delete;

  // One tensor per level, [B, height, width], values in [0, codes).
  void append(const std::vector<torch::Tensor>& codes);
  void close();
  int64_t count() const { return count_; }

 private:
  void write(const void* data, size_t size);

  std::string path_, temporary_;
  std::vector<CodeLevel> levels_;
  std::FILE* file_ = nullptr;
  int64_t count_ = 0;
  long count_offset_ = 0;
};

// Reads and verifies a whole store. Throws vqvae2::Error on a foreign, truncated or corrupt file.
CodeStore read_code_store(const std::string& path);
// The same from the file's bytes (`name` is used in messages).
CodeStore parse_code_store(const std::vector<uint8_t>& bytes, const std::string& name);

// Throws vqvae2::Error unless `store`'s levels have the given map sizes and codebook sizes.
void check_code_levels(const CodeStore& store, const std::vector<CodeLevel>& expected, const std::string& path);

}  // namespace vqvae2

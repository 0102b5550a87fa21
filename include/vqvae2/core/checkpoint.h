// Checkpoint files: everything needed to use a model or continue its training exactly.
//
// Layout (little-endian; docs/FORMATS.md has the details):
//   "VQV2CKPT"            8-byte magic
//   u32 version           kCheckpointVersion
//   u64 n, n bytes        JSON: {"kind", "config", "state", "tensors": [{"name", "dtype", "shape", "offset"}]}
//   u64 m, m bytes        the tensors' raw data, at the offsets the JSON gives
//   u32 crc32             of every byte before it
// Our own container, not LibTorch's archive: it is all bounds-checked here (LibTorch's pickle
// reader crashed on a mutated file under fuzzing), and it reads without LibTorch. Written
// atomically (see atomic_file.h). A truncated, foreign or corrupted file, or one holding a different
// model, is refused with a message that says which.
#pragma once

#include "vqvae2/core/error.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace vqvae2 {

constexpr uint32_t kCheckpointVersion = 2;

// Named CPU tensors (float32 or int64), as a checkpoint holds them.
class NamedTensors {
 public:
  void add(const std::string& name, const torch::Tensor& tensor);  // copies to a contiguous CPU tensor
  bool contains(const std::string& name) const { return tensors_.count(name) > 0; }
  // Throws vqvae2::Error naming `name` when it is missing.
  const torch::Tensor& at(const std::string& name) const;
  size_t size() const { return tensors_.size(); }
  // Names starting with `prefix`.
  std::vector<std::string> names(const std::string& prefix = "") const;

  // The JSON index and the raw bytes, and back. parse() checks every entry against the data.
  nlohmann::json index() const;
  std::string data() const;
  static NamedTensors parse(const nlohmann::json& index, const std::string& data, const std::string& name);

 private:
  std::map<std::string, torch::Tensor> tensors_;
};

struct CheckpointContents {
  nlohmann::json meta;  // {"kind", "config", "state", ...} ("tensors" is taken out into `tensors`)
  NamedTensors tensors;
};

// Writes `meta` and the tensors atomically to `path`.
void write_checkpoint(const std::string& path, const nlohmann::json& meta, const NamedTensors& tensors);

// Reads and verifies a checkpoint file. `expected_kind` (e.g. "vqvae") is checked against meta.kind.
CheckpointContents read_checkpoint(const std::string& path, const std::string& expected_kind);
// The same from the file's bytes (`name` is used in messages).
CheckpointContents parse_checkpoint(const std::vector<uint8_t>& bytes, const std::string& name,
                                    const std::string& expected_kind);

// A module's parameters and buffers as "<prefix>/<dotted name>".
void save_module(const torch::nn::Module& module, NamedTensors& tensors, const std::string& prefix);
// The inverse. Every tensor must be present with the same shape and dtype, and no other may be;
// otherwise throws vqvae2::Error naming the tensor and both shapes.
void load_module(torch::nn::Module& module, const NamedTensors& tensors, const std::string& prefix,
                 const std::string& path);

// Adam's per-parameter state (step, first and second moments) as "<prefix>/<index>/...", by the
// parameter's position in the optimiser, and back.
void save_adam(torch::optim::Adam& optimizer, NamedTensors& tensors, const std::string& prefix);
void load_adam(torch::optim::Adam& optimizer, const NamedTensors& tensors, const std::string& prefix,
               const std::string& path);

// A model's checkpoint, read once: the file, the configuration and training step it records, and
// its tensors ("model/..." and, for a run that can be resumed, "optimizer/...").
struct ModelCheckpoint {
  std::string path;
  std::string kind;
  nlohmann::json config;
  int64_t step = 0;
  NamedTensors tensors;

  // The configuration as `Config`; throws vqvae2::Error naming the file when it does not parse.
  template <typename Config>
  Config config_as() const {
    try {
      return config.get<Config>();
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("'{}' has an unreadable configuration: {}", path, e.what()));
    }
  }
};

// The kind ("vqvae", "prior", ...) a checkpoint file holds, from its header alone (the tensors are
// not read). Throws vqvae2::Error when the file is not a vqvae2 checkpoint.
std::string checkpoint_kind(const std::string& path);

// Reads a checkpoint that must hold a model of `kind` ("vqvae", "prior", ...), or of any kind when
// `kind` is empty (ModelCheckpoint::kind then says which).
ModelCheckpoint read_model_checkpoint(const std::string& path, const std::string& kind);

// Writes `module` (under "model/") and, when given, `optimizer` (under "optimizer/") and further
// named tensors of the training state (e.g. a loss scaler's "scaler/...") with the kind,
// configuration and step, atomically.
void write_model_checkpoint(const std::string& path, const std::string& kind, const nlohmann::json& config,
                            int64_t step, const torch::nn::Module& module, torch::optim::Adam* optimizer = nullptr,
                            const NamedTensors& extra = {});

// Compares a checkpoint's config with the one a caller expects; throws vqvae2::Error listing the
// differing fields ("model.hidden: checkpoint 128, requested 64").
void check_same_config(const nlohmann::json& stored, const nlohmann::json& requested, const std::string& path);

}  // namespace vqvae2

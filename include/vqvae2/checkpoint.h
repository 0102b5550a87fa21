// Checkpoint files: everything needed to use a model or continue its training exactly.
//
// Layout (little-endian):
//   "VQV2CKPT"            8-byte magic
//   u32 version           kCheckpointVersion
//   u64 n, n bytes        JSON: {"kind": ..., "config": {...}, "state": {...}} (readable by anyone)
//   u64 m, m bytes        LibTorch archive: model tensors, optimizer state
//   u32 crc32             of every byte before it
// Written atomically (see atomic_file.h). A truncated, foreign or corrupted file, or one holding a
// different model, is refused with a message that says which.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace vqvae2 {

constexpr uint32_t kCheckpointVersion = 1;

struct CheckpointContents {
  nlohmann::json meta;  // {"kind", "config", "state", ...}
  std::string payload;  // the LibTorch archive's bytes
};

// Writes `meta` and the archive atomically to `path`.
void write_checkpoint(const std::string& path, const nlohmann::json& meta, torch::serialize::OutputArchive& archive);

// Reads and verifies a checkpoint file. `expected_kind` (e.g. "vqvae") is checked against meta.kind.
CheckpointContents read_checkpoint(const std::string& path, const std::string& expected_kind);
// The same from the file's bytes (`name` is used in messages).
CheckpointContents parse_checkpoint(const std::vector<uint8_t>& bytes, const std::string& name,
                                    const std::string& expected_kind);
// Opens the payload of a checkpoint that read_checkpoint returned, its tensors mapped to `device`.
torch::serialize::InputArchive open_archive(const CheckpointContents& contents, const std::string& path,
                                            const torch::Device& device = torch::kCPU);

// A module's parameters and buffers, by their dotted names, as one entry of an archive (on the CPU,
// so a checkpoint written on a GPU loads anywhere).
void save_module(const torch::nn::Module& module, torch::serialize::OutputArchive& archive, const std::string& key);
// The inverse. Every tensor must be present with the same shape and dtype; otherwise throws
// vqvae2::Error naming the tensor and both shapes.
void load_module(torch::nn::Module& module, torch::serialize::InputArchive& archive, const std::string& key,
                 const std::string& path);

// Compares a checkpoint's config with the one a caller expects; throws vqvae2::Error listing the
// differing fields ("model.hidden: checkpoint 128, requested 64").
void check_same_config(const nlohmann::json& stored, const nlohmann::json& requested, const std::string& path);

}  // namespace vqvae2

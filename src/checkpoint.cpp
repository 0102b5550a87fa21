#include "vqvae2/checkpoint.h"

#include "vqvae2/atomic_file.h"
#include "vqvae2/error.h"
#include "vqvae2/image.h"

#include <cstring>
#include <sstream>

namespace vqvae2 {

namespace {

constexpr char kMagic[8] = {'V', 'Q', 'V', '2', 'C', 'K', 'P', 'T'};

template <typename T>
void put(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // the formats are little-endian, as every supported host
  out.append(bytes, sizeof(T));
}

template <typename T>
T take(const std::vector<uint8_t>& in, size_t& at, const std::string& path) {
  VQVAE2_CHECK(at + sizeof(T) <= in.size(), "'{}' is truncated ({} bytes): the file ends inside its header", path,
               in.size());
  T value;
  std::memcpy(&value, in.data() + at, sizeof(T));
  at += sizeof(T);
  return value;
}

void diff_json(const nlohmann::json& a, const nlohmann::json& b, const std::string& at, std::vector<std::string>& out) {
  if (a.is_object() && b.is_object()) {
    for (const auto& [key, value] : a.items()) {
      const auto path = at.empty() ? key : at + "." + key;
      if (!b.contains(key)) {
        out.push_back(fmt::format("{}: checkpoint {}, requested (absent)", path, value.dump()));
      } else {
        diff_json(value, b.at(key), path, out);
      }
    }
    for (const auto& [key, value] : b.items()) {
      if (!a.contains(key)) out.push_back(fmt::format("{}: checkpoint (absent), requested {}", at + "." + key, value.dump()));
    }
  } else if (a != b) {
    out.push_back(fmt::format("{}: checkpoint {}, requested {}", at, a.dump(), b.dump()));
  }
}

}  // namespace

void write_checkpoint(const std::string& path, const nlohmann::json& meta, torch::serialize::OutputArchive& archive) {
  std::ostringstream payload;
  archive.save_to(payload);
  const auto meta_text = meta.dump();
  const auto payload_text = payload.str();
  std::string out;
  out.reserve(meta_text.size() + payload_text.size() + 40);
  out.append(kMagic, sizeof(kMagic));
  put<uint32_t>(out, kCheckpointVersion);
  put<uint64_t>(out, meta_text.size());
  out += meta_text;
  put<uint64_t>(out, payload_text.size());
  out += payload_text;
  put<uint32_t>(out, crc32_update(0, out.data(), out.size()));
  write_file_atomically(path, out);
}

CheckpointContents read_checkpoint(const std::string& path, const std::string& expected_kind) {
  return parse_checkpoint(read_file(path), path, expected_kind);
}

CheckpointContents parse_checkpoint(const std::vector<uint8_t>& bytes, const std::string& path,
                                    const std::string& expected_kind) {
  VQVAE2_CHECK(bytes.size() >= sizeof(kMagic) && std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) == 0,
               "'{}' is not a vqvae2 checkpoint (wrong magic number)", path);
  size_t at = sizeof(kMagic);
  const auto version = take<uint32_t>(bytes, at, path);
  VQVAE2_CHECK(version == kCheckpointVersion,
               "'{}' is a version {} checkpoint; this vqvae2 reads version {} (use the vqvae2 that wrote it)", path,
               version, kCheckpointVersion);
  const auto meta_size = take<uint64_t>(bytes, at, path);
  VQVAE2_CHECK(meta_size <= bytes.size() - at, "'{}' is truncated: its header promises {} bytes of metadata", path,
               meta_size);
  const std::string meta_text(reinterpret_cast<const char*>(bytes.data() + at), meta_size);
  at += meta_size;
  const auto payload_size = take<uint64_t>(bytes, at, path);
  VQVAE2_CHECK(payload_size <= bytes.size() - at && bytes.size() - at - payload_size >= sizeof(uint32_t),
               "'{}' is truncated ({} bytes): it promises {} bytes of tensors; the run that wrote it was probably "
               "killed while copying it, so use an earlier checkpoint",
               path, bytes.size(), payload_size);
  CheckpointContents contents;
  contents.payload.assign(reinterpret_cast<const char*>(bytes.data() + at), payload_size);
  at += payload_size;
  const auto stored_crc = take<uint32_t>(bytes, at, path);
  VQVAE2_CHECK(at == bytes.size(), "'{}' has {} unexpected bytes after its end", path, bytes.size() - at);
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION  // fuzzers must reach the parsing behind the checksum
  VQVAE2_CHECK(crc32_update(0, bytes.data(), at - sizeof(uint32_t)) == stored_crc,
               "'{}' is corrupted: its CRC-32 does not match its contents", path);
#else
  (void)stored_crc;
#endif
  try {
    contents.meta = nlohmann::json::parse(meta_text);
  } catch (const nlohmann::json::exception& e) {
    fail("'{}' has unreadable metadata: {}", path, e.what());
  }
  const auto kind = contents.meta.value("kind", std::string());
  VQVAE2_CHECK(expected_kind.empty() || kind == expected_kind, "'{}' holds a {} checkpoint, but a {} checkpoint is needed here",
               path, kind.empty() ? "nameless" : kind, expected_kind);
  return contents;
}

torch::serialize::InputArchive open_archive(const CheckpointContents& contents, const std::string& path,
                                            const torch::Device& device) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(contents.payload.data(), contents.payload.size(), device);
  } catch (const std::exception& e) {
    fail("'{}': cannot read its tensors ({})", path, describe(e));
  }
  return archive;
}

void save_module(const torch::nn::Module& module, torch::serialize::OutputArchive& archive, const std::string& key) {
  c10::Dict<std::string, at::Tensor> state;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) state.insert(item.key(), item.value().detach().to(torch::kCPU));
  for (const auto& item : module.named_buffers(/*recurse=*/true)) state.insert(item.key(), item.value().detach().to(torch::kCPU));
  archive.write(key, c10::IValue(state));
}

void load_module(torch::nn::Module& module, torch::serialize::InputArchive& archive, const std::string& key,
                 const std::string& path) {
  c10::IValue value;
  VQVAE2_CHECK(archive.try_read(key, value) && value.isGenericDict(), "'{}' holds no '{}' tensors", path, key);
  const auto state = value.toGenericDict();
  std::vector<std::pair<std::string, at::Tensor>> targets;
  for (const auto& item : module.named_parameters(true)) targets.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers(true)) targets.emplace_back(item.key(), item.value());
  VQVAE2_CHECK(state.size() == targets.size(), "'{}' holds {} '{}' tensors, the model has {}: it belongs to another model",
               path, state.size(), key, targets.size());
  torch::NoGradGuard no_grad;
  for (auto& [name, target] : targets) {
    const auto found = state.find(name);
    VQVAE2_CHECK(found != state.end(), "'{}' has no tensor '{}.{}': it belongs to another model", path, key, name);
    const auto stored = found->value().toTensor();
    VQVAE2_CHECK(stored.sizes() == target.sizes() && stored.scalar_type() == target.scalar_type(),
                 "'{}': tensor '{}.{}' is {} {} in the file but {} {} in the model", path, key, name,
                 c10::toString(stored.scalar_type()), shape_of(stored.sizes()), c10::toString(target.scalar_type()), shape_of(target.sizes()));
    target.copy_(stored);
  }
}

void check_same_config(const nlohmann::json& stored, const nlohmann::json& requested, const std::string& path) {
  std::vector<std::string> differences;
  diff_json(stored, requested, "", differences);
  VQVAE2_CHECK(differences.empty(), "'{}' was written for another configuration:\n  {}", path,
               fmt::join(differences, "\n  "));
}

}  // namespace vqvae2

#include "vqvae2/core/checkpoint.h"

#include "vqvae2/core/files.h"
#include "vqvae2/core/error.h"

#include <cstring>
#include <fstream>
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

// ---- named tensors -------------------------------------------------------------------------------

void NamedTensors::add(const std::string& name, const torch::Tensor& tensor) {
  VQVAE2_CHECK(tensor.scalar_type() == torch::kFloat || tensor.scalar_type() == torch::kLong,
               "cannot store tensor '{}' of type {}", name, c10::toString(tensor.scalar_type()));
  tensors_[name] = tensor.detach().to(torch::kCPU).contiguous().clone();
}

const torch::Tensor& NamedTensors::at(const std::string& name) const {
  const auto found = tensors_.find(name);
  VQVAE2_CHECK(found != tensors_.end(), "no tensor '{}'", name);
  return found->second;
}

std::vector<std::string> NamedTensors::names(const std::string& prefix) const {
  std::vector<std::string> out;
  for (const auto& [name, tensor] : tensors_) {
    if (name.compare(0, prefix.size(), prefix) == 0) out.push_back(name);
  }
  return out;
}

nlohmann::json NamedTensors::index() const {
  auto index = nlohmann::json::array();
  int64_t offset = 0;
  for (const auto& [name, tensor] : tensors_) {
    index.push_back({{"name", name},
                     {"dtype", tensor.scalar_type() == torch::kFloat ? "float32" : "int64"},
                     {"shape", tensor.sizes().vec()},
                     {"offset", offset}});
    offset += static_cast<int64_t>(tensor.nbytes());
  }
  return index;
}

std::string NamedTensors::data() const {
  std::string out;
  for (const auto& [name, tensor] : tensors_) {
    if (tensor.nbytes() > 0) out.append(static_cast<const char*>(tensor.data_ptr()), tensor.nbytes());
  }
  return out;
}

NamedTensors NamedTensors::parse(const nlohmann::json& index, const std::string& data, const std::string& path) {
  VQVAE2_CHECK(index.is_array(), "'{}' has no tensor index", path);
  NamedTensors out;
  for (const auto& entry : index) {
    VQVAE2_CHECK(entry.is_object() && entry.contains("name") && entry["name"].is_string() && entry.contains("dtype") &&
                     entry["dtype"].is_string() && entry.contains("shape") && entry["shape"].is_array() &&
                     entry.contains("offset") && entry["offset"].is_number_integer() && entry["offset"].get<int64_t>() >= 0,
                 "'{}' has a malformed tensor entry {}", path, entry.dump().substr(0, 200));
    const auto name = entry["name"].get<std::string>();
    const auto dtype = entry["dtype"].get<std::string>();
    VQVAE2_CHECK(dtype == "float32" || dtype == "int64", "'{}': tensor '{}' has unknown type '{}'", path, name, dtype);
    const uint64_t element = dtype == "float32" ? 4 : 8;
    std::vector<int64_t> shape;
    uint64_t count = 1;
    for (const auto& d : entry["shape"]) {
      VQVAE2_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0 && d.get<int64_t>() <= (int64_t{1} << 40),
                   "'{}': tensor '{}' has a bad shape", path, name);
      shape.push_back(d.get<int64_t>());
      count *= d.get<uint64_t>();
      VQVAE2_CHECK(count <= (uint64_t{1} << 40), "'{}': tensor '{}' is impossibly large", path, name);
    }
    const auto offset = entry["offset"].get<uint64_t>();
    const auto bytes = count * element;
    VQVAE2_CHECK(offset <= data.size() && bytes <= data.size() - offset,
                 "'{}': tensor '{}' lies outside the file's data ({} bytes at {}, {} there)", path, name, bytes, offset,
                 data.size());
    VQVAE2_CHECK(!out.contains(name), "'{}' holds tensor '{}' twice", path, name);
    auto tensor = torch::empty(shape, dtype == "float32" ? torch::kFloat : torch::kLong);
    if (bytes > 0) std::memcpy(tensor.data_ptr(), data.data() + offset, bytes);
    out.tensors_[name] = tensor;
  }
  return out;
}

// ---- the file ------------------------------------------------------------------------------------

void write_checkpoint(const std::string& path, const nlohmann::json& meta, const NamedTensors& tensors) {
  auto header = meta;
  header["tensors"] = tensors.index();
  const auto meta_text = header.dump();
  const auto data = tensors.data();
  std::string out;
  out.reserve(meta_text.size() + data.size() + 40);
  out.append(kMagic, sizeof(kMagic));
  put<uint32_t>(out, kCheckpointVersion);
  put<uint64_t>(out, meta_text.size());
  out += meta_text;
  put<uint64_t>(out, data.size());
  out += data;
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
  const std::string payload(reinterpret_cast<const char*>(bytes.data() + at), payload_size);
  at += payload_size;
  CheckpointContents contents;
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
  VQVAE2_CHECK(contents.meta.is_object(), "'{}' has unreadable metadata (not a JSON object)", path);
  contents.tensors = NamedTensors::parse(contents.meta.value("tensors", nlohmann::json()), payload, path);
  contents.meta.erase("tensors");
  const auto kind = contents.meta.contains("kind") && contents.meta["kind"].is_string()
                        ? contents.meta["kind"].get<std::string>()
                        : std::string();
  VQVAE2_CHECK(expected_kind.empty() || kind == expected_kind, "'{}' holds a {} checkpoint, but a {} checkpoint is needed here",
               path, kind.empty() ? "nameless" : kind, expected_kind);
  return contents;
}

void save_module(const torch::nn::Module& module, NamedTensors& tensors, const std::string& prefix) {
  for (const auto& item : module.named_parameters(/*recurse=*/true)) tensors.add(prefix + "/" + item.key(), item.value());
  for (const auto& item : module.named_buffers(/*recurse=*/true)) tensors.add(prefix + "/" + item.key(), item.value());
}

void load_module(torch::nn::Module& module, const NamedTensors& tensors, const std::string& prefix,
                 const std::string& path) {
  std::vector<std::pair<std::string, at::Tensor>> targets;
  for (const auto& item : module.named_parameters(true)) targets.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers(true)) targets.emplace_back(item.key(), item.value());
  const auto stored = tensors.names(prefix + "/");
  VQVAE2_CHECK(stored.size() == targets.size(), "'{}' holds {} '{}' tensors, the model has {}: it belongs to another model",
               path, stored.size(), prefix, targets.size());
  torch::NoGradGuard no_grad;
  for (auto& [name, target] : targets) {
    const auto key = prefix + "/" + name;
    VQVAE2_CHECK(tensors.contains(key), "'{}' has no tensor '{}': it belongs to another model", path, key);
    const auto& value = tensors.at(key);
    VQVAE2_CHECK(value.sizes() == target.sizes() && value.scalar_type() == target.scalar_type(),
                 "'{}': tensor '{}' is {} {} in the file but {} {} in the model", path, key,
                 c10::toString(value.scalar_type()), shape_of(value.sizes()), c10::toString(target.scalar_type()),
                 shape_of(target.sizes()));
    target.copy_(value);
  }
}

namespace {

// LibTorch keys an optimiser's state by the parameter's TensorImpl: a string of its address in
// 1.13, the address itself in later versions. This finds the key either way.
template <typename Map>
typename Map::key_type state_key(const Map&, const torch::Tensor& parameter) {
  if constexpr (std::is_same_v<typename Map::key_type, std::string>) {
    std::ostringstream address;
    address << parameter.unsafeGetTensorImpl();
    return address.str();
  } else {
    return static_cast<typename Map::key_type>(parameter.unsafeGetTensorImpl());
  }
}

}  // namespace

void save_adam(torch::optim::Adam& optimizer, NamedTensors& tensors, const std::string& prefix) {
  auto& state = optimizer.state();
  int64_t index = 0;
  for (const auto& group : optimizer.param_groups()) {
    for (const auto& parameter : group.params()) {
      const auto found = state.find(state_key(state, parameter));
      if (found != state.end()) {
        const auto& s = static_cast<const torch::optim::AdamParamState&>(*found->second);
        const auto base = fmt::format("{}/{}/", prefix, index);
        tensors.add(base + "step", torch::tensor(static_cast<int64_t>(s.step()), torch::kLong));
        tensors.add(base + "exp_avg", s.exp_avg());
        tensors.add(base + "exp_avg_sq", s.exp_avg_sq());
        if (s.max_exp_avg_sq().defined()) tensors.add(base + "max_exp_avg_sq", s.max_exp_avg_sq());
      }
      ++index;
    }
  }
}

void load_adam(torch::optim::Adam& optimizer, const NamedTensors& tensors, const std::string& prefix,
               const std::string& path) {
  auto& state = optimizer.state();
  state.clear();
  int64_t index = 0;
  for (const auto& group : optimizer.param_groups()) {
    for (const auto& parameter : group.params()) {
      const auto base = fmt::format("{}/{}/", prefix, index++);
      if (!tensors.contains(base + "step")) continue;  // no step taken for it yet
      auto s = std::make_unique<torch::optim::AdamParamState>();
      const auto& step = tensors.at(base + "step");
      VQVAE2_CHECK(step.numel() == 1 && step.scalar_type() == torch::kLong, "'{}': bad optimiser step for parameter {}",
                   path, index - 1);
      s->step(step.item<int64_t>());
      for (const char* moment : {"exp_avg", "exp_avg_sq"}) {
        VQVAE2_CHECK(tensors.contains(base + moment) && tensors.at(base + moment).sizes() == parameter.sizes(),
                     "'{}': optimiser state '{}' is missing or does not fit parameter {} {}", path, base + moment,
                     index - 1, shape_of(parameter.sizes()));
      }
      s->exp_avg(tensors.at(base + "exp_avg").to(parameter.device()).clone());
      s->exp_avg_sq(tensors.at(base + "exp_avg_sq").to(parameter.device()).clone());
      if (tensors.contains(base + "max_exp_avg_sq")) {
        s->max_exp_avg_sq(tensors.at(base + "max_exp_avg_sq").to(parameter.device()).clone());
      }
      state[state_key(state, parameter)] = std::move(s);
    }
  }
}

std::string checkpoint_kind(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  VQVAE2_CHECK(in.good(), "cannot open '{}'", path);
  // Magic, version and the metadata's size: the fixed part of the header.
  std::vector<uint8_t> head(sizeof(kMagic) + sizeof(uint32_t) + sizeof(uint64_t));
  in.read(reinterpret_cast<char*>(head.data()), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  VQVAE2_CHECK(head.size() >= sizeof(kMagic) && std::memcmp(head.data(), kMagic, sizeof(kMagic)) == 0,
               "'{}' is not a vqvae2 checkpoint (wrong magic number)", path);
  size_t at = sizeof(kMagic);
  const auto version = take<uint32_t>(head, at, path);
  VQVAE2_CHECK(version == kCheckpointVersion,
               "'{}' is a version {} checkpoint; this vqvae2 reads version {} (use the vqvae2 that wrote it)", path,
               version, kCheckpointVersion);
  const auto meta_size = take<uint64_t>(head, at, path);
  constexpr uint64_t kMaxMeta = uint64_t{1} << 30;
  VQVAE2_CHECK(meta_size <= kMaxMeta, "'{}' is corrupted: its header promises {} bytes of metadata", path, meta_size);
  std::string meta_text(meta_size, '\0');
  in.read(meta_text.data(), static_cast<std::streamsize>(meta_size));
  VQVAE2_CHECK(static_cast<uint64_t>(in.gcount()) == meta_size, "'{}' is truncated: the file ends inside its header", path);
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(meta_text);
  } catch (const nlohmann::json::exception& e) {
    fail("'{}' has unreadable metadata: {}", path, e.what());
  }
  VQVAE2_CHECK(meta.is_object() && meta.contains("kind") && meta["kind"].is_string(),
               "'{}' names no model kind in its header; it was not written by vqvae2's training", path);
  return meta["kind"].get<std::string>();
}

ModelCheckpoint read_model_checkpoint(const std::string& path, const std::string& kind) {
  auto contents = read_checkpoint(path, kind);
  ModelCheckpoint checkpoint;
  checkpoint.path = path;
  checkpoint.kind = contents.meta.value("kind", kind);
  const auto& meta = contents.meta;
  VQVAE2_CHECK(meta.contains("config") && meta.contains("state") && meta["state"].is_object() &&
                   meta["state"].contains("step") && meta["state"]["step"].is_number_integer(),
               "'{}' has no configuration or step; it was not written by vqvae2's training", path);
  checkpoint.config = meta.at("config");
  checkpoint.step = meta.at("state").at("step").get<int64_t>();
  checkpoint.tensors = std::move(contents.tensors);
  return checkpoint;
}

void write_model_checkpoint(const std::string& path, const std::string& kind, const nlohmann::json& config,
                            int64_t step, const torch::nn::Module& module, torch::optim::Adam* optimizer,
                            const NamedTensors& extra) {
  NamedTensors tensors;
  save_module(module, tensors, "model");
  if (optimizer) save_adam(*optimizer, tensors, "optimizer");
  for (const auto& name : extra.names()) {
    VQVAE2_CHECK(!tensors.contains(name), "checkpoint tensor '{}' written twice", name);
    tensors.add(name, extra.at(name));
  }
  write_checkpoint(path, {{"kind", kind}, {"config", config}, {"state", {{"step", step}}}}, tensors);
}

void check_same_config(const nlohmann::json& stored, const nlohmann::json& requested, const std::string& path) {
  std::vector<std::string> differences;
  diff_json(stored, requested, "", differences);
  VQVAE2_CHECK(differences.empty(), "'{}' was written for another configuration:\n  {}", path,
               fmt::join(differences, "\n  "));
}

}  // namespace vqvae2

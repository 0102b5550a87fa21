#include "vqvae2/data/code_store.h"

#include "vqvae2/core/files.h"
#include "vqvae2/core/error.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vqvae2 {

namespace {

constexpr char kMagic[8] = {'V', 'Q', '2', 'C', 'O', 'D', 'E', 'S'};

nlohmann::json levels_json(const std::vector<CodeLevel>& levels) {
  auto array = nlohmann::json::array();
  for (const auto& l : levels) array.push_back({{"height", l.height}, {"width", l.width}, {"codes", l.codes}});
  return array;
}

}  // namespace

CodeStoreWriter::CodeStoreWriter(std::string path, std::vector<CodeLevel> levels, nlohmann::json meta)
    : path_(std::move(path)), levels_(std::move(levels)) {
  VQVAE2_CHECK(!levels_.empty(), "a code store needs at least one level");
  for (const auto& l : levels_) {
    VQVAE2_CHECK(l.height >= 1 && l.width >= 1 && l.codes >= 1 && l.codes <= 65536,
                 "bad code level {}x{} with K={} (K must be in [1, 65536])", l.height, l.width, l.codes);
  }
  temporary_ = fmt::format("{}.tmp.{}", path_, ::getpid());
  file_ = std::fopen(temporary_.c_str(), "wb");
  VQVAE2_CHECK(file_ != nullptr, "cannot create '{}': {}", temporary_, std::strerror(errno));
  meta["levels"] = levels_json(levels_);
  const auto header = meta.dump();
  const uint32_t version = kCodeStoreVersion;
  const uint64_t header_size = header.size();
  write(kMagic, sizeof(kMagic));
  write(&version, sizeof(version));
  write(&header_size, sizeof(header_size));
  write(header.data(), header.size());
  count_offset_ = std::ftell(file_);
  const uint64_t zero = 0;
  write(&zero, sizeof(zero));  // the count, patched by close()
}

CodeStoreWriter::~CodeStoreWriter() {
  if (file_ != nullptr) {
    std::fclose(file_);
    std::remove(temporary_.c_str());
  }
}

void CodeStoreWriter::write(const void* data, size_t size) {
  VQVAE2_CHECK(std::fwrite(data, 1, size, file_) == size, "cannot write '{}': {}", temporary_, std::strerror(errno));
}

void CodeStoreWriter::append(const std::vector<torch::Tensor>& codes) {
  VQVAE2_CHECK(file_ != nullptr, "code store '{}' is already closed", path_);
  VQVAE2_CHECK(codes.size() == levels_.size(), "expected {} code maps, got {}", levels_.size(), codes.size());
  const auto batch = codes[0].size(0);
  std::vector<torch::Tensor> cpu;
  for (size_t l = 0; l < levels_.size(); ++l) {
    const auto& level = levels_[l];
    VQVAE2_CHECK(codes[l].dim() == 3 && codes[l].size(0) == batch && codes[l].size(1) == level.height &&
                     codes[l].size(2) == level.width,
                 "level {} codes must be [{}, {}, {}], got {}", l, batch, level.height, level.width,
                 shape_of(codes[l].sizes()));
    auto c = codes[l].to(torch::kCPU, torch::kLong).contiguous();
    VQVAE2_CHECK(c.numel() == 0 || (c.min().item<int64_t>() >= 0 && c.max().item<int64_t>() < level.codes),
                 "level {} codes fall outside [0, {})", l, level.codes);
    cpu.push_back(c);
  }
  std::vector<uint16_t> record;
  for (int64_t i = 0; i < batch; ++i) {
    record.clear();
    for (const auto& c : cpu) {
      const auto* p = c[i].data_ptr<int64_t>();
      for (int64_t k = 0; k < c[i].numel(); ++k) record.push_back(static_cast<uint16_t>(p[k]));
    }
    write(record.data(), record.size() * sizeof(uint16_t));
    ++count_;
  }
}

void CodeStoreWriter::close() {
  VQVAE2_CHECK(file_ != nullptr, "code store '{}' is already closed", path_);
  // The count sits before the records, so the CRC is computed over the final bytes in a second
  // pass: re-read the file once (cheap next to encoding the images).
  const uint64_t count = static_cast<uint64_t>(count_);
  VQVAE2_CHECK(std::fseek(file_, count_offset_, SEEK_SET) == 0 && std::fwrite(&count, sizeof(count), 1, file_) == 1,
               "cannot write '{}'", temporary_);
  VQVAE2_CHECK(std::fflush(file_) == 0, "cannot write '{}': {}", temporary_, std::strerror(errno));
  VQVAE2_CHECK(std::fseek(file_, 0, SEEK_SET) == 0, "cannot rewind '{}'", temporary_);
  std::FILE* in = std::fopen(temporary_.c_str(), "rb");
  VQVAE2_CHECK(in != nullptr, "cannot reopen '{}'", temporary_);
  uint32_t crc = 0;
  std::vector<char> buffer(1 << 20);
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), in)) > 0) crc = crc32_update(crc, buffer.data(), n);
  std::fclose(in);
  VQVAE2_CHECK(std::fseek(file_, 0, SEEK_END) == 0 && std::fwrite(&crc, sizeof(crc), 1, file_) == 1,
               "cannot write '{}'", temporary_);
  const bool flushed = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  std::fclose(file_);
  file_ = nullptr;
  if (!flushed || std::rename(temporary_.c_str(), path_.c_str()) != 0) {
    const int error = errno;
    std::remove(temporary_.c_str());
    fail("cannot write code store '{}': {}", path_, std::strerror(error));
  }
}

CodeStore read_code_store(const std::string& path) { return parse_code_store(read_file(path), path); }

CodeStore parse_code_store(const std::vector<uint8_t>& bytes, const std::string& path) {
  size_t at = 0;
  const auto take = [&](void* out, size_t size, const char* what) {
    VQVAE2_CHECK(size <= bytes.size() - at, "'{}' is truncated ({} bytes): it ends inside its {}", path, bytes.size(),
                 what);
    std::memcpy(out, bytes.data() + at, size);
    at += size;
  };
  char magic[8];
  VQVAE2_CHECK(bytes.size() >= sizeof(magic), "'{}' is not a vqvae2 code store (too short)", path);
  take(magic, sizeof(magic), "magic number");
  VQVAE2_CHECK(std::memcmp(magic, kMagic, sizeof(magic)) == 0, "'{}' is not a vqvae2 code store (wrong magic number)",
               path);
  uint32_t version = 0;
  take(&version, sizeof(version), "header");
  VQVAE2_CHECK(version == kCodeStoreVersion, "'{}' is a version {} code store; this vqvae2 reads version {}", path,
               version, kCodeStoreVersion);
  uint64_t header_size = 0;
  take(&header_size, sizeof(header_size), "header");
  VQVAE2_CHECK(header_size <= bytes.size() - at, "'{}' is truncated: its header promises {} bytes", path, header_size);
  CodeStore store;
  try {
    store.meta = nlohmann::json::parse(bytes.begin() + static_cast<long>(at),
                                       bytes.begin() + static_cast<long>(at + header_size));
    for (const auto& l : store.meta.at("levels")) {
      store.levels.push_back({l.at("height").get<int64_t>(), l.at("width").get<int64_t>(), l.at("codes").get<int64_t>()});
    }
  } catch (const nlohmann::json::exception& e) {
    fail("'{}' has an unreadable header: {}", path, e.what());
  }
  at += header_size;
  VQVAE2_CHECK(!store.levels.empty(), "'{}' declares no levels", path);
  uint64_t per_record = 0;
  for (const auto& l : store.levels) {
    VQVAE2_CHECK(l.height >= 1 && l.width >= 1 && l.height <= 65536 && l.width <= 65536 && l.codes >= 1 &&
                     l.codes <= 65536,
                 "'{}' declares an impossible level {}x{} with K={}", path, l.height, l.width, l.codes);
    per_record += static_cast<uint64_t>(l.height * l.width);
  }
  uint64_t count = 0;
  take(&count, sizeof(count), "header");
  const uint64_t remaining = bytes.size() - at;
  VQVAE2_CHECK(remaining >= sizeof(uint32_t) && count <= (remaining - sizeof(uint32_t)) / (per_record * 2) &&
                   count * per_record * 2 + sizeof(uint32_t) == remaining,
               "'{}' is truncated or damaged: {} records of {} codes need {} bytes, {} are there", path, count,
               per_record, count * per_record * 2 + 4, remaining);
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION  // fuzzers must reach the parsing behind the checksum
  uint32_t stored_crc = 0;
  std::memcpy(&stored_crc, bytes.data() + bytes.size() - sizeof(uint32_t), sizeof(uint32_t));
  VQVAE2_CHECK(crc32_update(0, bytes.data(), bytes.size() - sizeof(uint32_t)) == stored_crc,
               "'{}' is corrupted: its CRC-32 does not match its contents", path);
#endif

  // [count, per_record] u16 -> per level int64 [count, H, W], the type the models take
  auto all = torch::empty({static_cast<int64_t>(count), static_cast<int64_t>(per_record)}, torch::kLong);
  auto* out = all.data_ptr<int64_t>();
  for (uint64_t i = 0; i < count * per_record; ++i) {
    uint16_t v;
    std::memcpy(&v, bytes.data() + at + 2 * i, 2);
    out[i] = v;
  }
  int64_t offset = 0;
  for (size_t l = 0; l < store.levels.size(); ++l) {
    const auto& level = store.levels[l];
    auto codes = all.slice(1, offset, offset + level.height * level.width)
                     .reshape({static_cast<int64_t>(count), level.height, level.width})
                     .contiguous();
    VQVAE2_CHECK(codes.numel() == 0 || codes.max().item<int64_t>() < level.codes,
                 "'{}': level {} holds codes outside [0, {})", path, l, level.codes);
    store.codes.push_back(codes);
    offset += level.height * level.width;
  }
  return store;
}

void check_code_levels(const CodeStore& store, const std::vector<CodeLevel>& expected, const std::string& path) {
  const auto describe_levels = [](const std::vector<CodeLevel>& levels) {
    std::vector<std::string> parts;
    for (const auto& l : levels) parts.push_back(fmt::format("{}x{} K={}", l.height, l.width, l.codes));
    return fmt::format("{}", fmt::join(parts, ", "));
  };
  bool same = store.levels.size() == expected.size();
  for (size_t l = 0; same && l < expected.size(); ++l) {
    same = store.levels[l].height == expected[l].height && store.levels[l].width == expected[l].width &&
           store.levels[l].codes == expected[l].codes;
  }
  VQVAE2_CHECK(same, "'{}' holds codes of levels [{}] but the model needs [{}]; extract codes with the matching VQ-VAE",
               path, describe_levels(store.levels), describe_levels(expected));
}

}  // namespace vqvae2

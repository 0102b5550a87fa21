// libFuzzer target: any bytes as a code store (built without its CRC check, so mutations reach the
// header and record parsing).
#include "vqvae2/data/code_store.h"
#include "vqvae2/core/error.h"

#include <cstdint>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  try {
    const auto store = vqvae2::parse_code_store(bytes, "fuzz");
    for (size_t l = 0; l < store.levels.size(); ++l) {
      if (store.codes[l].size(0) != store.size()) __builtin_trap();
      if (store.codes[l].numel() > 0 && store.codes[l].max().item<int64_t>() >= store.levels[l].codes) __builtin_trap();
    }
  } catch (const vqvae2::Error&) {
  }
  return 0;
}

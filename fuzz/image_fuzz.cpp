// libFuzzer target: any bytes as an image file. Every input must either decode or raise
// vqvae2::Error; crashes, hangs, leaks and sanitizer reports are bugs.
#include "vqvae2/core/error.h"
#include "vqvae2/data/image.h"

#include <cstdint>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  for (const int64_t channels : {1, 3}) {
    try {
      // A 1 M pixel cap keeps each run fast; the code paths are the same at any size.
      const auto image = vqvae2::decode_image(bytes, "fuzz", /*size=*/16, channels, /*max_pixels=*/1 << 20);
      if (image.size(0) != channels || image.size(1) != 16 || image.size(2) != 16) __builtin_trap();
    } catch (const vqvae2::Error&) {
    }
  }
  return 0;
}

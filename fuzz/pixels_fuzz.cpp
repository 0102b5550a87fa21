// libFuzzer target: any bytes as an image file, through the pixel decoders alone (libpng for PNG,
// libjpeg-turbo for JPEG, stb for BMP/GIF/TGA) without decode_image's LibTorch resize, so that it
// runs thousands of times a second (image_fuzz covers the whole path, slowly). Every input must
// either decode to width·height·channels bytes or raise vqvae2::Error; crashes, hangs, leaks and
// sanitizer reports are bugs.
#include "data/jpeg.h"
#include "data/png.h"
#include "vqvae2/core/error.h"

#include <stb/stb_image.h>

#include <climits>
#include <cstdint>

namespace {

// 128×128: the code paths are the same at any size, and small images keep each run fast.
constexpr int64_t kMaxPixels = 1 << 14;

void check_size(size_t bytes, int width, int height, int channels) {
  if (width <= 0 || height <= 0 || width * static_cast<int64_t>(height) > kMaxPixels) __builtin_trap();
  if (bytes != static_cast<size_t>(width) * static_cast<size_t>(height) * static_cast<size_t>(channels)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    if (vqvae2::png::is_png(data, size)) {
      const auto header = vqvae2::png::decode(data, size, "fuzz", kMaxPixels, /*header_only=*/true);
      const auto image = vqvae2::png::decode(data, size, "fuzz", kMaxPixels, /*header_only=*/false);
      if (header.width != image.width || header.height != image.height) __builtin_trap();
      check_size(image.rgba.size(), image.width, image.height, 4);
    } else if (vqvae2::jpeg::is_jpeg(data, size)) {
      const auto header = vqvae2::jpeg::decode(data, size, "fuzz", kMaxPixels, /*header_only=*/true);
      const auto image = vqvae2::jpeg::decode(data, size, "fuzz", kMaxPixels, /*header_only=*/false);
      if (header.width != image.width || header.height != image.height) __builtin_trap();
      check_size(image.rgb.size(), image.width, image.height, 3);
    } else if (size <= INT_MAX) {
      int width = 0, height = 0, stored = 0;
      const int length = static_cast<int>(size);
      // What decode_image checks before decoding (an empty image, e.g. a BMP 16777216 pixels wide
      // and 0 high, is refused there: stb would return a buffer of no pixels).
      if (stbi_info_from_memory(data, length, &width, &height, &stored) == 1 && width > 0 && height > 0 &&
          static_cast<int64_t>(width) * height <= kMaxPixels) {
        stbi_uc* pixels = stbi_load_from_memory(data, length, &width, &height, &stored, 4);
        if (pixels != nullptr) {
          if (width <= 0 || height <= 0) __builtin_trap();
          // Touch the last byte so that a short buffer is an ASan report.
          volatile stbi_uc last = pixels[static_cast<size_t>(width) * height * 4 - 1];
          (void)last;
          stbi_image_free(pixels);
        }
      }
    }
  } catch (const vqvae2::Error&) {
  }
  return 0;
}

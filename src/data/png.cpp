#include "png.h"

#include "vqvae2/core/error.h"

#include <png.h>

#include <cstring>

namespace vqvae2::png {

bool is_png(const uint8_t* data, size_t size) {
  static const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  return size >= 8 && std::memcmp(data, kSignature, 8) == 0;
}

Decoded decode(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels, bool header_only) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  VQVAE2_CHECK(png_image_begin_read_from_memory(&image, data, size) != 0, "'{}' is not a readable PNG ({})", name,
               image.message);
  Decoded decoded;
  decoded.width = static_cast<int>(image.width);
  decoded.height = static_cast<int>(image.height);
  const auto pixels = static_cast<int64_t>(image.width) * image.height;
  if (header_only || pixels > max_pixels || pixels == 0) {
    png_image_free(&image);
    VQVAE2_CHECK(pixels > 0, "'{}' has an empty image ({}x{})", name, image.width, image.height);
    VQVAE2_CHECK(pixels <= max_pixels, "'{}' is {}x{} pixels, more than the {} M pixels we decode; shrink it first",
                 name, image.width, image.height, max_pixels >> 20);
    return decoded;
  }
  image.format = PNG_FORMAT_RGBA;
  decoded.rgba.resize(PNG_IMAGE_SIZE(image));
  // finish_read releases libpng's state whether it succeeds or not.
  VQVAE2_CHECK(png_image_finish_read(&image, nullptr, decoded.rgba.data(), 0, nullptr) != 0,
               "cannot decode '{}' ({})", name, image.message);
  return decoded;
}

}  // namespace vqvae2::png

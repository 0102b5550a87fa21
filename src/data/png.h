// PNG decoding with libpng's simplified API (private to the library; image.cpp is its only user).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vqvae2::png {

bool is_png(const uint8_t* data, size_t size);  // starts with the 8-byte PNG signature

struct Decoded {
  int width = 0, height = 0;
  std::vector<uint8_t> rgba;  // width·height·4 (any PNG: grey, palette, 16-bit, interlaced, tRNS);
                              // empty when only the header was read
};

// Reads the header (and, unless header_only, the pixels). Refuses images with more than
// `max_pixels` pixels before decoding them. Throws vqvae2::Error with libpng's message.
Decoded decode(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels, bool header_only);

}  // namespace vqvae2::png

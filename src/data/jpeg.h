// JPEG decoding with libjpeg-turbo (private to the library; image.cpp is its only user).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vqvae2::jpeg {

bool is_jpeg(const uint8_t* data, size_t size);  // starts with the SOI marker FF D8 FF

struct Decoded {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // width·height·3, empty when only the header was read
};

// Reads the header (and, unless header_only, the pixels, converted to RGB). Refuses images with
// more than `max_pixels` pixels before decoding them, and files that end early. Throws
// vqvae2::Error with libjpeg's message.
Decoded decode(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels, bool header_only);

}  // namespace vqvae2::jpeg

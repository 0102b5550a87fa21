#include "jpeg.h"

#include "vqvae2/core/error.h"

#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <jerror.h>
#include <jpeglib.h>

namespace vqvae2::jpeg {

namespace {

// libjpeg reports fatal errors through error_exit, which must not return: we longjmp back into
// read(). Only C objects live between the setjmp and a longjmp, so no C++ destructor is skipped.
struct ErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  int truncated;  // libjpeg's "premature end of data" warning was raised
};

extern "C" void on_error(j_common_ptr info) {
  auto* manager = reinterpret_cast<ErrorManager*>(info->err);
  (*info->err->format_message)(info, manager->message);
  std::longjmp(manager->jump, 1);
}

extern "C" void on_message(j_common_ptr info, int level) {
  auto* manager = reinterpret_cast<ErrorManager*>(info->err);
  if (level < 0 && info->err->msg_code == JWRN_JPEG_EOF) manager->truncated = 1;
}

// Returns 0 on success; fills width/height and (unless header_only) a malloc'd RGB buffer.
int read(const uint8_t* data, size_t size, int64_t max_pixels, bool header_only, int* width, int* height,
         uint8_t** pixels, ErrorManager* manager) {
  jpeg_decompress_struct info;
  std::memset(&info, 0, sizeof(info));
  info.err = jpeg_std_error(&manager->base);
  manager->base.error_exit = on_error;
  manager->base.emit_message = on_message;
  manager->truncated = 0;
  uint8_t* volatile buffer = nullptr;
  if (setjmp(manager->jump) != 0) {
    jpeg_destroy_decompress(&info);
    std::free(buffer);
    return 1;
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, data, static_cast<unsigned long>(size));
  jpeg_read_header(&info, TRUE);
  *width = static_cast<int>(info.image_width);
  *height = static_cast<int>(info.image_height);
  if (header_only || static_cast<int64_t>(info.image_width) * info.image_height > max_pixels ||
      info.image_width == 0 || info.image_height == 0) {
    jpeg_destroy_decompress(&info);
    return 0;
  }
  info.out_color_space = JCS_RGB;  // grey and YCbCr convert; CMYK is refused with libjpeg's message
  jpeg_start_decompress(&info);
  const size_t stride = static_cast<size_t>(info.output_width) * 3;
  buffer = static_cast<uint8_t*>(std::malloc(stride * info.output_height));
  if (buffer == nullptr) {
    jpeg_destroy_decompress(&info);
    std::snprintf(manager->message, sizeof(manager->message), "out of memory");
    return 1;
  }
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = buffer + stride * info.output_scanline;
    jpeg_read_scanlines(&info, &row, 1);
  }
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  *pixels = buffer;
  return 0;
}

}  // namespace

bool is_jpeg(const uint8_t* data, size_t size) {
  return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

Decoded decode(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels, bool header_only) {
  ErrorManager manager;
  int width = 0, height = 0;
  uint8_t* pixels = nullptr;
  const int failed = read(data, size, max_pixels, header_only, &width, &height, &pixels, &manager);
  VQVAE2_CHECK(failed == 0, "'{}' is not a readable JPEG ({})", name, manager.message);
  std::unique_ptr<uint8_t, void (*)(void*)> owned(pixels, std::free);
  VQVAE2_CHECK(width > 0 && height > 0, "'{}' has an empty image ({}x{})", name, width, height);
  VQVAE2_CHECK(static_cast<int64_t>(width) * height <= max_pixels,
               "'{}' is {}x{} pixels, more than the {} M pixels we decode; shrink it first", name, width, height,
               max_pixels >> 20);
  VQVAE2_CHECK(header_only || !manager.truncated, "'{}' is a truncated JPEG (the file ends before the image does)",
               name);
  Decoded decoded;
  decoded.width = width;
  decoded.height = height;
  if (pixels != nullptr) decoded.rgb.assign(pixels, pixels + static_cast<size_t>(width) * height * 3);
  return decoded;
}

}  // namespace vqvae2::jpeg

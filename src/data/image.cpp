#include "vqvae2/data/image.h"

#include "vqvae2/core/files.h"
#include "vqvae2/core/error.h"

#include "jpeg.h"
#include "png.h"

#include <ATen/CPUGeneratorImpl.h>
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
#include <stb/stb_image_write.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

namespace vqvae2 {

void ImageFormat::validate() const {
  VQVAE2_CHECK(size >= 1 && size <= 16384, "image size must be in [1, 16384], got {}", size);
  VQVAE2_CHECK(channels == 1 || channels == 3, "channels must be 1 (grey) or 3 (RGB), got {}", channels);
}

namespace {

void check_dimensions(const std::string& name, int width, int height, int64_t max_pixels = kMaxImagePixels) {
  VQVAE2_CHECK(width > 0 && height > 0, "'{}' has an empty image ({}x{})", name, width, height);
  VQVAE2_CHECK(static_cast<int64_t>(width) * height <= max_pixels,
               "'{}' is {}x{} pixels, more than the {} M pixels we decode; shrink it first", name, width, height,
               max_pixels >> 20);
}

std::string stb_reason() {
  const char* reason = stbi_failure_reason();
  return reason ? reason : "unknown error";
}

}  // namespace

ImageInfo probe_image(const std::string& path) {
  ImageInfo info;
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  VQVAE2_CHECK(file != nullptr, "cannot open '{}': {}", path, std::strerror(errno));
  // JPEG and PNG headers are read by libjpeg/libpng from a prefix of the file (the whole file if the
  // header is longer, as with large embedded thumbnails); the other formats by stb from the file.
  std::vector<uint8_t> prefix(256 * 1024);
  prefix.resize(std::fread(prefix.data(), 1, prefix.size(), file.get()));
  const bool is_jpeg = jpeg::is_jpeg(prefix.data(), prefix.size());
  if (is_jpeg || png::is_png(prefix.data(), prefix.size())) {
    const auto read_header = [&](const std::vector<uint8_t>& bytes) {
      if (is_jpeg) {
        const auto header = jpeg::decode(bytes.data(), bytes.size(), path, kMaxImagePixels, /*header_only=*/true);
        return std::pair{header.width, header.height};
      }
      const auto header = png::decode(bytes.data(), bytes.size(), path, kMaxImagePixels, /*header_only=*/true);
      return std::pair{header.width, header.height};
    };
    try {
      std::tie(info.width, info.height) = read_header(prefix);
    } catch (const Error&) {
      if (std::feof(file.get())) throw;
      std::tie(info.width, info.height) = read_header(read_file(path));
    }
    info.channels = is_jpeg ? 3 : 4;
  } else {
    VQVAE2_CHECK(!prefix.empty(), "'{}' is empty (0 bytes)", path);
    std::rewind(file.get());
    VQVAE2_CHECK(stbi_info_from_file(file.get(), &info.width, &info.height, &info.channels) == 1,
                 "'{}' is not a readable image ({})", path, stb_reason());
  }
  check_dimensions(path, info.width, info.height);
  return info;
}

torch::Tensor decode_image(const std::vector<uint8_t>& bytes, const std::string& name, int64_t size,
                           int64_t channels, int64_t max_pixels) {
  VQVAE2_CHECK(channels == 1 || channels == 3, "channels must be 1 or 3, got {}", channels);
  VQVAE2_CHECK(size >= 1, "image size must be positive, got {}", size);
  VQVAE2_CHECK(!bytes.empty(), "'{}' is empty (0 bytes)", name);
  // RGBA pixels, row-major: from libjpeg-turbo for JPEG, libpng for PNG, stb for BMP/GIF/TGA.
  int width = 0, height = 0;
  std::vector<uint8_t> rgba;
  if (png::is_png(bytes.data(), bytes.size())) {
    auto decoded = png::decode(bytes.data(), bytes.size(), name, max_pixels, /*header_only=*/false);
    width = decoded.width;
    height = decoded.height;
    rgba = std::move(decoded.rgba);
  } else if (jpeg::is_jpeg(bytes.data(), bytes.size())) {
    auto decoded = jpeg::decode(bytes.data(), bytes.size(), name, max_pixels, /*header_only=*/false);
    width = decoded.width;
    height = decoded.height;
    rgba.resize(static_cast<size_t>(width) * height * 4, 255);
    for (size_t p = 0, n = static_cast<size_t>(width) * height; p < n; ++p) {
      std::memcpy(&rgba[4 * p], &decoded.rgb[3 * p], 3);
    }
  } else {
    VQVAE2_CHECK(bytes.size() <= static_cast<size_t>(std::numeric_limits<int>::max()), "'{}' is too large to decode",
                 name);
    int stored = 0;
    const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
    const int length = static_cast<int>(bytes.size());
    VQVAE2_CHECK(stbi_info_from_memory(data, length, &width, &height, &stored) == 1,
                 "'{}' is not a readable image ({})", name, stb_reason());
    check_dimensions(name, width, height, max_pixels);
    std::unique_ptr<stbi_uc, void (*)(void*)> decoded(
        stbi_load_from_memory(data, length, &width, &height, &stored, 4), stbi_image_free);
    VQVAE2_CHECK(decoded != nullptr, "cannot decode '{}' ({})", name, stb_reason());
    rgba.assign(decoded.get(), decoded.get() + static_cast<size_t>(width) * height * 4);
  }

  // Centred square crop, alpha composited onto white, converted to the asked channels.
  const int side = std::min(width, height);
  const int x0 = (width - side) / 2, y0 = (height - side) / 2;
  std::vector<uint8_t> square(static_cast<size_t>(side) * side * channels);
  for (int y = 0; y < side; ++y) {
    for (int x = 0; x < side; ++x) {
      const uint8_t* p = rgba.data() + (static_cast<size_t>(y0 + y) * width + (x0 + x)) * 4;
      const float alpha = p[3] / 255.0f;
      float rgb[3];
      for (int c = 0; c < 3; ++c) rgb[c] = p[c] * alpha + 255.0f * (1.0f - alpha);
      uint8_t* out = square.data() + (static_cast<size_t>(y) * side + x) * channels;
      if (channels == 3) {
        for (int c = 0; c < 3; ++c) out[c] = static_cast<uint8_t>(std::lround(rgb[c]));
      } else {
        out[0] = static_cast<uint8_t>(std::lround(0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2]));
      }
    }
  }
  auto result = torch::empty({size, size, channels}, torch::kUInt8);
  if (side == size) {
    std::memcpy(result.data_ptr<uint8_t>(), square.data(), square.size());
  } else {
    const int ok = stbir_resize_uint8(square.data(), side, side, 0, result.data_ptr<uint8_t>(), static_cast<int>(size),
                                      static_cast<int>(size), 0, static_cast<int>(channels));
    VQVAE2_CHECK(ok == 1, "cannot resize '{}' to {}x{}", name, size, size);
  }
  return result.permute({2, 0, 1}).contiguous();  // [H, W, C] -> [C, H, W]
}

torch::Tensor resize_square(const torch::Tensor& image, int64_t size) {
  VQVAE2_CHECK(image.dim() == 3 && image.size(1) == image.size(2) && image.scalar_type() == torch::kUInt8,
               "resize_square expects uint8 [C, H, H], got {} {}", c10::toString(image.scalar_type()), shape_of(image.sizes()));
  if (image.size(1) == size) return image;
  const auto hwc = image.permute({1, 2, 0}).contiguous();
  auto result = torch::empty({size, size, image.size(0)}, torch::kUInt8);
  const int side = static_cast<int>(image.size(1)), s = static_cast<int>(size), c = static_cast<int>(image.size(0));
  VQVAE2_CHECK(stbir_resize_uint8(hwc.data_ptr<uint8_t>(), side, side, 0, result.data_ptr<uint8_t>(), s, s, 0, c) == 1,
               "cannot resize a {}x{} image to {}x{}", side, side, size, size);
  return result.permute({2, 0, 1}).contiguous();
}

torch::Tensor load_image(const std::string& path, int64_t size, int64_t channels) {
  return decode_image(read_file(path), path, size, channels);
}

torch::Tensor to_model_range(const torch::Tensor& pixels) {
  return pixels.to(torch::kFloat).div(127.5).sub(1.0);
}

torch::Tensor to_pixels(const torch::Tensor& x) {
  return x.detach().to(torch::kCPU, torch::kFloat).add(1.0).mul(127.5).round().clamp(0, 255).to(torch::kUInt8);
}

void ImageJitter::validate() const {
  VQVAE2_CHECK(max_rotation >= 0 && max_rotation <= 180, "the jitter's rotation must be in [0, 180] degrees, got {}",
               max_rotation);
  VQVAE2_CHECK(max_scale >= 0 && max_scale < 1, "the jitter's scale must be in [0, 1), got {}", max_scale);
  VQVAE2_CHECK(max_shift >= 0, "the jitter's shift must be >= 0 pixels, got {}", max_shift);
}

torch::Tensor jitter_images(const torch::Tensor& images, const ImageJitter& jitter, uint64_t seed) {
  jitter.validate();
  VQVAE2_CHECK(images.dim() == 4 && images.is_floating_point(), "jitter_images expects float [B, C, H, W], got {}",
               images.sizes());
  const auto batch = images.size(0), height = images.size(2), width = images.size(3);
  auto generator = at::detail::createCPUGenerator(seed);
  const auto uniform = [&](double bound) {  // [B] in [−bound, bound]
    return torch::rand({batch}, generator, torch::kDouble).mul(2).sub(1).mul(bound);
  };
  const auto angle = uniform(jitter.max_rotation * M_PI / 180.0);
  const auto zoom = uniform(jitter.max_scale).add(1);
  // affine_grid maps each output position (normalised to [−1, 1]) to where it reads the input:
  // x_in = A·x_out + t with A = R(θ)/zoom (zoom > 1 enlarges the image), t the shift in normalised units
  // (a pixel is 2/W of them).
  const auto cos = angle.cos().div(zoom), sin = angle.sin().div(zoom);
  const auto shift_x = uniform(jitter.max_shift).mul(2.0 / width), shift_y = uniform(jitter.max_shift).mul(2.0 / height);
  const auto theta = torch::stack({torch::stack({cos, -sin, shift_x}, 1), torch::stack({sin, cos, shift_y}, 1)}, 1)
                         .to(images.device(), images.scalar_type());  // [B, 2, 3]
  namespace F = torch::nn::functional;
  const auto grid = F::affine_grid(theta, images.sizes(), /*align_corners=*/false);
  return F::grid_sample(images, grid,
                        F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kBorder).align_corners(false));
}

std::string png_name_for(const std::string& source, std::set<std::string>& taken) {
  auto name = std::filesystem::path(source).lexically_normal();
  if (name.empty() || name.is_absolute() || *name.begin() == "..") return "";
  name.replace_extension(".png");
  return taken.insert(name.string()).second ? name.string() : "";
}

torch::Tensor make_grid(const torch::Tensor& images, int64_t columns, int64_t padding) {
  VQVAE2_CHECK(images.dim() == 4 && images.scalar_type() == torch::kUInt8,
               "make_grid expects uint8 [N, C, H, W], got {} {}", c10::toString(images.scalar_type()), shape_of(images.sizes()));
  const auto n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  columns = std::max<int64_t>(1, std::min(columns, n));
  const auto rows = (n + columns - 1) / columns;
  auto grid = torch::full({c, rows * (h + padding) + padding, columns * (w + padding) + padding}, 255, torch::kUInt8);
  for (int64_t i = 0; i < n; ++i) {
    const auto y = padding + (i / columns) * (h + padding);
    const auto x = padding + (i % columns) * (w + padding);
    grid.slice(1, y, y + h).slice(2, x, x + w).copy_(images[i]);
  }
  return grid;
}

void save_png(const std::string& path, const torch::Tensor& image) {
  VQVAE2_CHECK(image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3) && image.scalar_type() == torch::kUInt8,
               "save_png expects uint8 [1 or 3, H, W], got {} {}", c10::toString(image.scalar_type()), shape_of(image.sizes()));
  const auto hwc = image.permute({1, 2, 0}).contiguous().to(torch::kCPU);
  const int h = static_cast<int>(hwc.size(0)), w = static_cast<int>(hwc.size(1)), c = static_cast<int>(hwc.size(2));
  std::string encoded;
  const auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  VQVAE2_CHECK(stbi_write_png_to_func(append, &encoded, w, h, c, hwc.data_ptr<uint8_t>(), w * c) != 0,
               "cannot encode PNG for '{}'", path);
  write_file_atomically(path, encoded);
}

}  // namespace vqvae2

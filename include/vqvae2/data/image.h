// Image files in and out: decoding any PNG/JPEG (and the other formats stb reads) into the model's
// layout, resizing, and writing PNG grids. Pixels on disk are 8-bit; tensors here are uint8
// [C, H, W] (one image) or [N, C, H, W] (a batch); the model sees float in [-1, 1].
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace vqvae2 {

// Largest image we agree to decode (width × height); bigger files are refused before decoding.
constexpr int64_t kMaxImagePixels = int64_t{1} << 26;  // 67 M pixels, e.g. 8192 × 8192

// What every image becomes: uint8 [channels, size, size]. The model decides it (VQVAEOptions), so
// it is passed to the data set rather than stored twice.
struct ImageFormat {
  int64_t size = 32;     // S
  int64_t channels = 1;  // 1 = grey, 3 = RGB
  void validate() const;
};

struct ImageInfo {
  int width = 0, height = 0, channels = 0;  // as stored in the file
};

// Reads only the header. Throws vqvae2::Error naming the file when it is not a readable image or
// is larger than kMaxImagePixels.
ImageInfo probe_image(const std::string& path);

// Decodes `bytes` (an encoded file; `name` is used in messages), composites transparency onto
// white, converts to `channels` (1 = grey by luminance, 3 = RGB), resizes the centred square crop to
// `size` × `size`. Returns uint8 [channels, size, size]. Throws vqvae2::Error on bad data and on
// images of more than `max_pixels` pixels (checked before decoding).
torch::Tensor decode_image(const std::vector<uint8_t>& bytes, const std::string& name, int64_t size,
                           int64_t channels, int64_t max_pixels = kMaxImagePixels);
torch::Tensor load_image(const std::string& path, int64_t size, int64_t channels);

// uint8 [C, H, W] -> uint8 [C, size, size] (area-aware resampling; H = W expected).
torch::Tensor resize_square(const torch::Tensor& image, int64_t size);

// uint8 [..] in [0, 255] <-> float in [-1, 1].
torch::Tensor to_model_range(const torch::Tensor& pixels);
torch::Tensor to_pixels(const torch::Tensor& x);

// A small random affine distortion of each image of a batch: what a digit or an icon may also look
// like. Each image gets its own rotation, scale and shift, drawn uniformly within the bounds, and is
// resampled bilinearly; the edge pixels extend outwards (border padding), so a black or white
// background stays black or white. Used to give the priors more code maps than there are images
// (extract-codes --augment).
struct ImageJitter {
  double max_rotation = 10.0;  // degrees either way
  double max_scale = 0.1;      // zoom in [1 − s, 1 + s]
  double max_shift = 1.5;      // pixels either way, on each axis
  void validate() const;
};
// float [B, C, H, W] (any range) -> the same shape, jittered; `seed` fixes every draw.
torch::Tensor jitter_images(const torch::Tensor& images, const ImageJitter& jitter, uint64_t seed);

// [N, C, H, W] uint8 -> one [C, rows·(H+pad)+pad, columns·(W+pad)+pad] uint8 tile sheet, white gaps.
torch::Tensor make_grid(const torch::Tensor& images, int64_t columns, int64_t padding = 2);

// The name under which an image made from `source` (a path relative to a folder) is written: the
// same path with the extension .png. Empty when that name is unsafe (absolute, or leaving the
// folder) or already in `taken` (a.jpg and a.png); callers then number the image instead.
std::string png_name_for(const std::string& source, std::set<std::string>& taken);

// Writes uint8 [C, H, W] (C = 1 or 3) as PNG, atomically (temporary file, then rename).
void save_png(const std::string& path, const torch::Tensor& image);

}  // namespace vqvae2

// The default data set lives inside the binary: data/mnist/digits.png (a sheet of 28×28 tiles) and
// data/mnist/digits.json (its manifest), linked in with the assembler's .incbin so that
// `vqvae2 train-vqvae` works with no files at all. scripts/make-embedded-mnist.sh regenerates them.
#include "vqvae2/data/data.h"
#include "vqvae2/core/error.h"

#include "png.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <memory>

#define VQVAE2_INCBIN(symbol, file)                        \
  __asm__(".section .rodata\n"                             \
          ".global " #symbol "_begin\n"                    \
          ".balign 16\n" #symbol "_begin:\n"               \
          ".incbin \"" file "\"\n"                         \
          ".global " #symbol "_end\n" #symbol "_end:\n"    \
          ".byte 0\n"                                      \
          ".previous\n");                                  \
  extern "C" const unsigned char symbol##_begin[];         \
  extern "C" const unsigned char symbol##_end[];

VQVAE2_INCBIN(vqvae2_mnist_png, VQVAE2_MNIST_PNG)
VQVAE2_INCBIN(vqvae2_mnist_json, VQVAE2_MNIST_JSON)

namespace vqvae2 {

namespace {

struct EmbeddedMnist {
  torch::Tensor images;  // [N, 1, 28, 28] uint8
  torch::Tensor labels;  // [N] int64
};

const EmbeddedMnist& embedded_mnist() {
  static const EmbeddedMnist mnist = [] {
    const auto manifest = nlohmann::json::parse(
        std::string(reinterpret_cast<const char*>(vqvae2_mnist_json_begin), vqvae2_mnist_json_end - vqvae2_mnist_json_begin));
    const int tile = manifest.at("tile"), columns = manifest.at("columns"), count = manifest.at("count");
    const auto sheet = png::decode(vqvae2_mnist_png_begin, static_cast<size_t>(vqvae2_mnist_png_end - vqvae2_mnist_png_begin),
                                   "embedded MNIST", int64_t{1} << 26, /*header_only=*/false);
    VQVAE2_CHECK(sheet.width == tile * columns && sheet.height >= tile * ((count + columns - 1) / columns),
                 "the embedded MNIST sheet is damaged ({}x{}); rebuild vqvae2", sheet.width, sheet.height);
    // RGBA [rows·28, columns·28, 4] -> grey -> [rows, 28, columns, 28] -> [rows, columns, 28, 28] -> [N, 1, 28, 28]
    const int rows = sheet.height / tile;
    auto images = torch::from_blob(const_cast<uint8_t*>(sheet.rgba.data()), {rows, tile, columns, tile, 4}, torch::kUInt8)
                      .select(4, 0)
                      .permute({0, 2, 1, 3})
                      .reshape({rows * columns, 1, tile, tile})
                      .slice(0, 0, count)
                      .clone();
    auto labels = torch::empty({count}, torch::kLong);
    int64_t at = 0;
    const auto class_counts = manifest.at("class_counts").get<std::vector<int64_t>>();
    for (size_t digit = 0; digit < class_counts.size(); ++digit) {
      labels.slice(0, at, at + class_counts[digit]).fill_(static_cast<int64_t>(digit));
      at += class_counts[digit];
    }
    VQVAE2_CHECK(at == count, "the embedded MNIST manifest is inconsistent; rebuild vqvae2");
    return EmbeddedMnist{images, labels};
  }();
  return mnist;
}

}  // namespace

torch::Tensor embedded_mnist_images() { return embedded_mnist().images; }
torch::Tensor embedded_mnist_labels() { return embedded_mnist().labels; }

}  // namespace vqvae2
